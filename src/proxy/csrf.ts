/**
 * Cross-site request refusal for proxied routes, which are authenticated by the session
 * cookie (Better Auth checks origins only on its own routes).
 *
 * Unsafe methods need an `Origin` (or, without one, a `Referer`) that is the gateway's own
 * origin or a trusted one. A request with neither passes: browsers send `Origin` on every
 * cross-site unsafe request, so its absence means a non-browser client, which cannot ride on
 * a victim's cookie. Callers pass a WebSocket handshake as an unsafe method: it is a GET,
 * but it opens a channel that carries the cookie's authority.
 */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export interface CsrfInput {
  method: string;
  origin: string | null;
  referer: string | null;
  /** Origins allowed: BETTER_AUTH_URL, TRUSTED_ORIGINS and the origin the request addressed. */
  allowedOrigins: ReadonlySet<string>;
}

export function isCrossSiteRefused({ method, origin, referer, allowedOrigins }: CsrfInput): boolean {
  if (SAFE_METHODS.has(method)) return false;
  if (origin !== null) return !allowedOrigins.has(origin);
  if (referer !== null) return !allowedOrigins.has(originOf(referer) ?? "");
  return false;
}

function originOf(url: string): string | undefined {
  try {
    const origin = new URL(url).origin;
    return origin === "null" ? undefined : origin;
  } catch {
    return undefined;
  }
}
