/**
 * HTTP/1.1 rules the gateway applies to every request before anything else reads it: which
 * methods it refuses to forward, and whether the `Host` header can be trusted to name the
 * origin the client addressed. Pure, so each rule is a row in tests/protocol.test.ts.
 */

/**
 * Methods the gateway answers itself and never forwards.
 * - TRACE (and Microsoft's TRACK) ask the server to echo the request back: a backend, or a
 *   framework default, that does so would hand the gateway's JWT to whoever sent it, the token
 *   the design keeps away from browser JavaScript (cross-site tracing).
 * - CONNECT asks for a tunnel; the gateway is no forward proxy.
 * https://www.rfc-editor.org/rfc/rfc9110#section-9.3.8, #section-9.3.6
 */
const REFUSED_METHODS = new Set(["TRACE", "TRACK", "CONNECT"]);

/** What a 405 names in `Allow`: the methods every route of the gateway answers. Others (WebDAV, QUERY, …) are forwarded too. */
export const ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/**
 * A `Host` value the gateway accepts: a DNS name or IPv4 address (letters, digits, `.`, `-`,
 * `_`, `~`) or a bracketed IPv6 literal, with an optional port. RFC 3986's reg-name also allows
 * sub-delimiters and percent-encoding, which no real host has; refusing them matters because
 * Bun joins two `Host` lines into one value with ", " (RFC 9112 §3.2 requires a 400 for that),
 * and a comma-separated `X-Forwarded-Host` lets a backend that builds links pick the wrong host.
 * https://www.rfc-editor.org/rfc/rfc9112#section-3.2
 */
const VALID_HOST = /^(?:[A-Za-z0-9._~-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

export type ProtocolVerdict =
  /** Go on, with the request's absolute URL (request.url, or resolved against the gateway's own origin). */
  | { ok: true; url: string }
  /** Answer with this status and generic error, and these headers; nothing else reads the request. */
  | { ok: false; status: 400 | 405; error: string; reason: string; headers: Record<string, string> };

export interface ProtocolInput {
  method: string;
  /** The `Content-Length` header as Bun joined it, or null. */
  contentLength?: string | null;
  /** `request.url` as Bun built it: absolute when the Host was usable, else the bare target. */
  url: string;
  /** The `Host` header as Bun joined it, or null when there was none. */
  host: string | null;
  /** The gateway's own host (BETTER_AUTH_URL's), for requests that name none. */
  ownHost: string;
}

export function checkProtocol({ method, url, host, ownHost, contentLength = null }: ProtocolInput): ProtocolVerdict {
  if (REFUSED_METHODS.has(method)) {
    return {
      ok: false,
      status: 405,
      error: "Method not allowed",
      reason: `${method} is never forwarded`,
      // After CONNECT, Bun treats what follows on the connection as tunnel data: close it.
      headers: method === "CONNECT" ? { allow: ALLOWED_METHODS, connection: "close" } : { allow: ALLOWED_METHODS },
    };
  }
  if (host === null) {
    // Bun answers an HTTP/1.1 request without Host with 400 itself, so this is HTTP/1.0, where
    // Host is optional (load balancers' health checks still send such requests). Its target
    // is resolved against the gateway's own origin. The gateway speaks plain HTTP (TLS ends in
    // front of it), so the URL is http:// like every other request.url.
    if (url.startsWith("/")) return { ok: true, url: `http://${ownHost}${url}` };
    return refuseHost("a request without Host and without an origin-form target");
  }
  if (!VALID_HOST.test(host)) {
    return refuseHost(host === "" ? "empty Host" : host.includes(",") ? "more than one Host" : "invalid Host");
  }
  if (!parsableHost(host)) return refuseHost("invalid Host");
  // Two Content-Length lines reach the gateway joined ("5, 5"); fetch cannot send that on, and
  // RFC 9112 §6.3 lets a recipient refuse it rather than guess.
  if (contentLength !== null && !/^\d+$/.test(contentLength)) {
    return { ok: false, status: 400, error: "Invalid Content-Length", reason: "Content-Length is not one number", headers: {} };
  }
  // A valid Host always gives an absolute URL; anything else is a target Bun could not place.
  if (!url.startsWith("http://") && !url.startsWith("https://")) return refuseHost("unresolvable target");
  return { ok: true, url };
}

/**
 * Whether a URL can be built on `host`. The characters can all be right and the host still
 * wrong: a port over 65535, `1.2.3.4.5`, `999.0.0.1`. Bun builds request.url on such a Host
 * anyway, and Better Auth's `new URL(request.url)` then throws. The answers are kept (a
 * gateway sees few distinct hosts; the memo is emptied when it fills, so a flood of made-up
 * ones costs the parse each, ≈0.2 µs, and no memory).
 */
const parsable = new Map<string, boolean>();
function parsableHost(host: string): boolean {
  let verdict = parsable.get(host);
  if (verdict === undefined) {
    if (parsable.size >= 256) parsable.clear();
    verdict = URL.canParse(`http://${host}/`);
    parsable.set(host, verdict);
  }
  return verdict;
}

function refuseHost(reason: string): ProtocolVerdict {
  return { ok: false, status: 400, error: "Invalid Host header", reason, headers: {} };
}
