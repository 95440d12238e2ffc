import Negotiator from "negotiator";

/**
 * A browser navigation: a GET (or HEAD) whose Accept prefers HTML over JSON. Browsers send
 * `text/html,…,*\/*;q=0.8` when following a link; fetch() and XHR send `*\/*` or
 * `application/json`, and keep getting JSON errors.
 */
export function isNavigation(method: string, accept: string | null): boolean {
  if ((method !== "GET" && method !== "HEAD") || !accept) return false;
  return new Negotiator({ headers: { accept } }).mediaType(["application/json", "text/html"]) === "text/html";
}
