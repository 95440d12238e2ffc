import { LRUCache } from "lru-cache";
import type { CallerClaims, Minter, MintedToken } from "../token/mint";
import { sessionTokenFromCookie } from "../proxy/headers";
import type { AuthOperations } from "./service";

/** Who is calling, as established from their session cookie. */
export interface Identity {
  readonly userId: string;
  readonly sessionId: string;
  /** JWT for the backend, with at least half its lifetime left. */
  readonly token: string;
  /** `Set-Cookie` values Better Auth produced while validating (a session refresh). */
  readonly setCookies: readonly string[];
}

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

interface ValidatedSession {
  claims: CallerClaims;
}

/**
 * Validates sessions and derives their JWTs, with two bounded caches in front of the
 * database and the signer:
 *
 * - sessions, by cookie token: trusted for at most `sessionCacheSeconds` and never past the
 *   session's own expiry. A sign-out or revocation through this instance clears the cache
 *   (`forgetSessions`), so it takes effect here at once; on other instances within that bound.
 *   Invalid cookies are never cached, so each costs at most one lookup and cannot push valid
 *   sessions out.
 * - JWTs, by session id: reused while more than half of their lifetime remains, so the backend
 *   always gets a token with at least half its lifetime left, for its own session only.
 */
export function createIdentityResolver({ auth, mint, sessionCacheSeconds, cacheEntries, onLookup }: IdentityOptions) {
  const sessions = new LRUCache<string, ValidatedSession>({ max: cacheEntries });
  const tokens = new LRUCache<string, MintedToken>({ max: cacheEntries });
  const cacheMs = sessionCacheSeconds * 1000;

  async function tokenFor(claims: CallerClaims): Promise<string> {
    const cached = tokens.get(claims.sid);
    if (cached && Date.now() < cached.renewAt) return cached.token;
    const minted = await mint(claims);
    tokens.set(claims.sid, minted);
    return minted.token;
  }

  async function identify(headers: Headers): Promise<Identity | null> {
    const sessionToken = sessionTokenFromCookie(headers.get("cookie"));
    if (sessionToken === undefined) return null;

    const hit = cacheMs > 0 ? sessions.get(sessionToken) : undefined;
    onLookup?.(hit ? "hit" : "miss");
    if (hit) {
      return { userId: hit.claims.sub, sessionId: hit.claims.sid, token: await tokenFor(hit.claims), setCookies: [] };
    }

    const session = await auth.getSession(headers.get("cookie")!, true);
    if (!session) return null;
    const { claims } = session;
    const trustedFor = Math.min(cacheMs, session.expiresAt - Date.now());
    if (trustedFor > 0) sessions.set(sessionToken, { claims }, { ttl: trustedFor });
    return { userId: claims.sub, sessionId: claims.sid, token: await tokenFor(claims), setCookies: session.setCookies };
  }

  return {
    identify,
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
