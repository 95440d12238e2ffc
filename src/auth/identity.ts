import { LRUCache } from "lru-cache";
import { ApiKeyRefused } from "../errors";
import type { CallerClaims, Minter, MintedToken } from "../token/mint";
import { chooseCredential, isApiKey, type Credential } from "./credential";
import type { AuthOperations, SessionCredential } from "./service";

/** Who is calling, as established from their session (cookie or bearer token) or API key. */
export interface Identity {
  /** What the JWT says about the caller (and what a route's `allow` is checked against). */
  readonly claims: CallerClaims;
  /** `Set-Cookie` values Better Auth produced while validating (a session refresh). */
  readonly setCookies: readonly string[];
  /**
   * The claims as one string: the JWT cache's key. A lookup that finds the user changed (a
   * new role, a ban lifted, another e-mail) gets a new key, so a token is never served with
   * claims older than the session cache allows.
   */
  readonly tokenKey: string;
  /** What re-validates it (open WebSockets' periodic check). */
  readonly credential: Credential;
}

const NO_COOKIES: readonly string[] = Object.freeze([]);

export interface IdentityOptions {
  auth: Pick<AuthOperations, "getSession" | "verifyApiKey" | "apiKeyStatus">;
  mint: Minter;
  /** How long a validated session or key is trusted without asking the database again. @default 5 */
  sessionCacheSeconds: number;
  /** Most sessions and keys (and as many JWTs) kept in memory. @default 10000 */
  cacheEntries: number;
  /** Told whether each lookup was answered from the cache (metrics). */
  onLookup?(result: "hit" | "miss"): void;
}

/**
 * Validates sessions and API keys (identify) and derives their JWTs (tokenFor), with two
 * bounded caches in front of the database and the signer:
 *
 * - identities, by session token (cookie and bearer alike: the same signed token) or by key:
 *   trusted for at most `sessionCacheSeconds` and never past the session's or key's own
 *   expiry. A sign-out, revocation, ban or role change through this instance clears the cache
 *   (`forgetSessions`), so it takes effect here at once; on other instances (and after the
 *   command line changed the database) within that bound. Invalid credentials are never
 *   cached, so each costs at most one lookup and cannot push valid ones out. A key with a
 *   rate limit or quota is never cached: Better Auth counts it on every request.
 * - JWTs, by the identity's claims and audience: reused while more than half of their
 *   lifetime remains, so the backend always gets a token with at least half its lifetime
 *   left, for its own session and its own audience only, and with the claims of the latest
 *   lookup.
 */
export function createIdentityResolver({ auth, mint, sessionCacheSeconds, cacheEntries, onLookup }: IdentityOptions) {
  const identities = new LRUCache<string, Identity>({ max: cacheEntries });
  // Per identity, its tokens by audience: the table has a handful of audiences, so the inner
  // Map stays small, and no key string is built per request.
  const tokens = new LRUCache<string, Map<string, MintedToken>>({ max: cacheEntries });
  const cacheMs = sessionCacheSeconds * 1000;

  /**
   * The identity's JWT for `audience`: the cached one (returned as is, not in a promise: the
   * hot path then costs no extra microtask) or a new one.
   */
  function tokenFor(identity: Identity, audience: string): string | Promise<string> {
    const cached = tokens.get(identity.tokenKey)?.get(audience);
    if (cached && Date.now() < cached.renewAt) return cached.token;
    return mintFor(identity, audience);
  }

  async function mintFor(identity: Identity, audience: string): Promise<string> {
    const minted = await mint(identity.claims, audience);
    let byAudience = tokens.get(identity.tokenKey);
    if (!byAudience) tokens.set(identity.tokenKey, (byAudience = new Map()));
    byAudience.set(audience, minted);
    return minted.token;
  }

  /**
   * The caller behind the request's credential (src/auth/credential.ts), or null without one
   * or with a session that is not valid. A key that does not let the request through throws
   * ApiKeyRefused (401, 403, 429). `acceptKeys`: the route takes API keys.
   */
  async function identify(headers: Headers, acceptKeys = true): Promise<Identity | null> {
    const choice = chooseCredential(
      { authorization: headers.get("authorization"), apiKey: headers.get("x-api-key"), cookie: headers.get("cookie") },
      acceptKeys,
    );
    if ("refused" in choice) throw new ApiKeyRefused(choice.refused);
    const { credential } = choice;
    if (credential === null) return null;
    // By kind too: a key sent as a cookie (or a session token as a key) must never find the
    // other kind's entry, whose checks it did not pass.
    const cacheKey = credential.kind === "api_key" ? `key:${credential.key}` : `session:${credential.token}`;

    const hit = cacheMs > 0 ? identities.get(cacheKey) : undefined;
    onLookup?.(hit ? "hit" : "miss");
    // A cached identity never carries cookies: a refresh's Set-Cookie goes out once.
    if (hit) return hit;

    const found = await lookUp(credential, headers.get("cookie"), true);
    if (!found) return null;
    const { identity, expiresAt, cacheable } = found;
    const trustedFor = Math.min(cacheMs, (expiresAt ?? Infinity) - Date.now());
    if (cacheable && trustedFor > 0) identities.set(cacheKey, { ...identity, setCookies: NO_COOKIES }, { ttl: trustedFor });
    return identity;
  }

  /** `count`: a request's check (Better Auth counts the key's use); false for re-checks, which must not. */
  async function lookUp(credential: Credential, cookie: string | null, count: boolean) {
    if (credential.kind === "api_key") {
      // Every key the gateway made has the prefix: anything else is refused without a lookup.
      if (!isApiKey(credential.key)) throw new ApiKeyRefused("invalid");
      const key = count ? await auth.verifyApiKey(credential.key) : await auth.apiKeyStatus(credential.key);
      if (!key.ok) throw new ApiKeyRefused(key.reason, key.reason === "rate-limited" ? key.retryAfterSeconds : undefined);
      const identity: Identity = { claims: key.claims, setCookies: NO_COOKIES, tokenKey: JSON.stringify(key.claims), credential };
      return { identity, expiresAt: key.expiresAt, cacheable: !key.counted };
    }
    const presented: SessionCredential = credential.via === "bearer" ? { bearer: credential.token } : { cookie: cookie ?? "" };
    const session = await auth.getSession(presented, count);
    if (!session) return null;
    const identity: Identity = { claims: session.claims, setCookies: session.setCookies, tokenKey: JSON.stringify(session.claims), credential };
    return { identity, expiresAt: session.expiresAt, cacheable: true };
  }

  /**
   * The identity's claims as the database has them now (open WebSockets' check, which then
   * applies the route's `allow` to them again): null once the session ended, the key was
   * revoked or expired, or the user was banned. Uses nothing up: no key quota, no refresh.
   */
  async function currentClaims(identity: Identity, cookie: string): Promise<Identity["claims"] | null> {
    try {
      return (await lookUp(identity.credential, cookie, false))?.identity.claims ?? null;
    } catch (error) {
      if (error instanceof ApiKeyRefused) return null;
      throw error;
    }
  }

  return {
    identify,
    tokenFor,
    currentClaims,
    /** Drops every cached session and key: the next request of each is validated again. */
    forgetSessions: () => identities.clear(),
    get cachedSessions() {
      return identities.size;
    },
    get cachedTokens() {
      return tokens.size;
    },
  };
}

export type IdentityResolver = ReturnType<typeof createIdentityResolver>;
