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
  /** Origins always allowed: BETTER_AUTH_URL and TRUSTED_ORIGINS (one set, built once). */
  trustedOrigins: ReadonlySet<string>;
  /** The origin the request addressed (its forwarded proto and host): allowed too. */
  ownOrigin: string;
}

export function isCrossSiteRefused({ method, origin, referer, trustedOrigins, ownOrigin }: CsrfInput): boolean {
  if (SAFE_METHODS.has(method)) return false;
  const claimed = origin ?? (referer === null ? undefined : (originOf(referer) ?? ""));
  if (claimed === undefined) return false;
  return claimed !== ownOrigin && !trustedOrigins.has(claimed);
}

function originOf(url: string): string | undefined {
  try {
    const origin = new URL(url).origin;
    return origin === "null" ? undefined : origin;
  } catch {
    return undefined;
  }
}
