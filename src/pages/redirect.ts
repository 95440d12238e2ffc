/**
 * Where a browser goes after signing in: `?redirect=` when it is a path on the gateway's own
 * origin, otherwise "/". An absolute URL, `//host`, `/\host`, control characters, or anything
 * else a browser would resolve to another origin is ignored (an open redirect would let a link
 * that looks like the app's send a freshly signed-in user to a look-alike site).
 */
export function safeRedirect(raw: string | null | undefined, origin: string): string {
  if (!raw || raw.length > 2048) return "/";
  // Browsers treat "\" as "/" and drop tabs and newlines before resolving a URL.
  if (!raw.startsWith("/") || raw.startsWith("//") || /[\\\x00-\x1f\x7f]/.test(raw)) return "/";
  let url: URL;
  try {
    url = new URL(raw, origin);
  } catch {
    return "/";
  }
  if (url.origin !== origin) return "/";
  // Dot segments resolve away: "/.//evil.example" becomes "//evil.example", which a browser
  // reads as another host when it is the Location.
  const path = url.pathname + url.search + url.hash;
  return path.startsWith("//") ? "/" : path;
}
