import { jsonError } from "../errors";

/**
 * CORS for front-ends on another origin (CORS_ORIGINS). Same-origin stays the recommendation;
 * these rules only run when the variable lists origins, and only for requests that carry an
 * `Origin`. Pure functions of the request's headers and the listed origins, so each rule is a
 * row in tests/cors.test.ts. src/app.ts answers preflights with `preflight` (before any route
 * is matched, so Better Auth, the pages and every route of the table are covered alike) and
 * passes every other answer through `withCors`.
 *
 * Credentials (the session cookie) are always allowed, so `*` is never answered: the exact
 * origin is echoed, and only for a listed one.
 * https://fetch.spec.whatwg.org/#http-cors-protocol
 */

/** How long a browser may reuse a preflight's answer (Chromium caps it at 2 h, Firefox at 24 h). */
export const PREFLIGHT_MAX_AGE_SECONDS = 600;

/** RFC 9110 §5.6.2: what a method or a header name is made of. https://www.rfc-editor.org/rfc/rfc9110#section-5.6.2 */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** What a preflight's answer depends on (besides the path, which caches key on anyway). */
const PREFLIGHT_VARY = ["Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"];

/**
 * The gateway decides who may read an answer: a backend's (or a framework default's) own
 * `Access-Control-Allow-Origin: *` or echo of any origin would otherwise open a route to every
 * site. A backend's `Access-Control-Expose-Headers` stays: which of its headers a listed
 * front-end may read is the backend's business (Better Auth lists `set-auth-token` itself).
 */
const DECIDED_BY_GATEWAY = ["access-control-allow-origin", "access-control-allow-credentials"];

/**
 * The answer to a CORS preflight (the caller has checked the method is OPTIONS), or undefined
 * when the request is not one (no `Origin`, or no `Access-Control-Request-Method`): an OPTIONS
 * like any other, handled by the route. A preflight is never forwarded and needs no session.
 *
 * - a listed origin: 204 with the origin, credentials, the requested method and headers, and
 *   a max-age;
 * - an unlisted one: 403, without any CORS header (the browser then refuses the request);
 * - a method or a header name that is not a token: 400 (no browser sends one).
 */
export function preflight(
  origin: string | null,
  requestMethod: string | null,
  requestHeaders: string | null,
  allowed: ReadonlySet<string>,
): Response | undefined {
  if (origin === null || requestMethod === null) return undefined;
  if (!allowed.has(origin)) return jsonError(403, "Origin not allowed");
  const headerNames = requestHeaders === null ? [] : headerList(requestHeaders);
  if (!TOKEN.test(requestMethod) || headerNames === undefined) return jsonError(400, "Bad preflight request");
  const headers = new Headers({
    "access-control-allow-origin": origin,
    "access-control-allow-credentials": "true",
    // A browser asks about one method per preflight: that one is the answer (WebDAV's and
    // QUERY are forwarded like GET; TRACE and CONNECT are refused before any route, and
    // browsers never ask for them).
    "access-control-allow-methods": requestMethod,
    "access-control-max-age": String(PREFLIGHT_MAX_AGE_SECONDS),
    vary: PREFLIGHT_VARY.join(", "),
  });
  // Echoed, not `*`: on a credentialed request `*` is no wildcard but the literal name "*".
  if (headerNames.length > 0) headers.set("access-control-allow-headers", headerNames.join(", "));
  return new Response(null, { status: 204, headers });
}

/**
 * An actual answer, for a request with this `Origin` (the caller skips requests without one):
 * the backend's own allow-origin and allow-credentials go; a listed origin gets the gateway's.
 * `Vary: Origin` either way, so that a cache never hands one origin's answer to another.
 * Changes `response.headers` in place and returns the response.
 */
export function withCors(response: Response, origin: string, allowed: ReadonlySet<string>): Response {
  const { headers } = response;
  for (const name of DECIDED_BY_GATEWAY) headers.delete(name);
  headers.set("vary", mergeVary(headers.get("vary"), ["Origin"]));
  if (allowed.has(origin)) {
    headers.set("access-control-allow-origin", origin);
    headers.set("access-control-allow-credentials", "true");
  }
  return response;
}

/**
 * A `Vary` value with `names` added where missing (names compare case-insensitively); `*`
 * already varies on everything and stays alone.
 * https://www.rfc-editor.org/rfc/rfc9110#section-12.5.5
 */
export function mergeVary(existing: string | null, names: readonly string[]): string {
  const present = (existing ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  if (present.includes("*")) return "*";
  const lower = new Set(present.map((name) => name.toLowerCase()));
  for (const name of names) {
    if (lower.has(name.toLowerCase())) continue;
    lower.add(name.toLowerCase());
    present.push(name);
  }
  return present.join(", ");
}

/**
 * `Access-Control-Request-Headers` as lower-cased names (browsers send them so already), or
 * undefined when one is not a token. Empty list elements are ignored, as RFC 9110 §5.6.1 asks.
 */
function headerList(value: string): string[] | undefined {
  const names: string[] = [];
  for (const item of value.split(",")) {
    const name = item.trim();
    if (name === "") continue;
    if (!TOKEN.test(name)) return undefined;
    const lower = name.toLowerCase();
    if (!names.includes(lower)) names.push(lower);
  }
  return names;
}
