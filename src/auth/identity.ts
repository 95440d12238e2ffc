import { LRUCache } from "lru-cache";
import type { CallerClaims, Minter, MintedToken } from "../token/mint";
import { sessionTokenFromCookie } from "../proxy/headers";
import type { AuthOperations } from "./service";

/** Who is calling, as established from their session cookie. */
export interface Identity {
  /** What the JWT says about the caller (and what a route's `allow` is checked against). */
  readonly claims: CallerClaims;
  /** `Set-Cookie` values Better Auth produced while validating (a session refresh). */
  readonly setCookies: readonly string[];
}

const NO_COOKIES: readonly string[] = Object.freeze([]);

export interface IdentityOptions {
  auth: Pick<AuthOperations, "getSession">;
  mint: Minter;
  /** How long a validated session is trusted without asking the database again. @default 5 */
  sessionCacheSeconds: number;
  /** Most sessions (and as many JWTs) kept in memory. @default 10000 */
  cacheEntries: number;
  /** Told whether each lookup was answered from the cache (metrics). */
  onLookup?(result: "hit" | "miss"): void;
}

/**
 * Validates sessions (identify) and derives their JWTs (tokenFor), with two bounded caches in
 * front of the database and the signer:
 *
 * - sessions, by cookie token: trusted for at most `sessionCacheSeconds` and never past the
 *   session's own expiry. A sign-out or revocation through this instance clears the cache
 *   (`forgetSessions`), so it takes effect here at once; on other instances within that bound.
 *   Invalid cookies are never cached, so each costs at most one lookup and cannot push valid
 *   sessions out.
 * - JWTs, by session id and audience: reused while more than half of their lifetime remains,
 *   so the backend always gets a token with at least half its lifetime left, for its own
 *   session and its own audience only (a token minted for one route's upstream is never sent
 *   to another route's that has an audience of its own).
 */
export function createIdentityResolver({ auth, mint, sessionCacheSeconds, cacheEntries, onLookup }: IdentityOptions) {
  const sessions = new LRUCache<string, Identity>({ max: cacheEntries });
  // Per session, its tokens by audience: the table has a handful of audiences, so the inner
  // Map stays small, and no key string is built per request.
  const tokens = new LRUCache<string, Map<string, MintedToken>>({ max: cacheEntries });
  const cacheMs = sessionCacheSeconds * 1000;

  /**
   * The session's JWT for `audience`: the cached one (returned as is, not in a promise: the
   * hot path then costs no extra microtask) or a new one.
   */
  function tokenFor(claims: CallerClaims, audience: string): string | Promise<string> {
    const cached = tokens.get(claims.sid)?.get(audience);
    if (cached && Date.now() < cached.renewAt) return cached.token;
    return mintFor(claims, audience);
  }

  async function mintFor(claims: CallerClaims, audience: string): Promise<string> {
    const minted = await mint(claims, audience);
    let byAudience = tokens.get(claims.sid);
    if (!byAudience) tokens.set(claims.sid, (byAudience = new Map()));
    byAudience.set(audience, minted);
    return minted.token;
  }

  async function identify(headers: Headers): Promise<Identity | null> {
    const sessionToken = sessionTokenFromCookie(headers.get("cookie"));
    if (sessionToken === undefined) return null;

    const hit = cacheMs > 0 ? sessions.get(sessionToken) : undefined;
    onLookup?.(hit ? "hit" : "miss");
    // A cached identity never carries cookies: a refresh's Set-Cookie goes out once.
    if (hit) return hit;

    const session = await auth.getSession(headers.get("cookie")!, true);
    if (!session) return null;
    const { claims } = session;
    const trustedFor = Math.min(cacheMs, session.expiresAt - Date.now());
    if (trustedFor > 0) sessions.set(sessionToken, { claims, setCookies: NO_COOKIES }, { ttl: trustedFor });
    return { claims, setCookies: session.setCookies };
  }

  return {
    identify,
    tokenFor,
    /** Drops every cached session: the next request of each is validated again. */
    forgetSessions: () => sessions.clear(),
    get cachedSessions() {
      return sessions.size;
    },
    get cachedTokens() {
      return tokens.size;
    },
  };
}

export type IdentityResolver = ReturnType<typeof createIdentityResolver>;
