/**
 * Which credential a request presents, decided from its headers alone (pure; each rule is a
 * row in tests/credential.test.ts). Kept apart from Better Auth so that the proxy thread can
 * tell keys from session tokens without loading it.
 *
 * - an API key: `X-Api-Key: <key>` or `Authorization: Bearer <key>`; keys always start with
 *   API_KEY_PREFIX (the auth plugin's key generator makes sure of it);
 * - a session token for apps without cookies: `Authorization: Bearer <token>` (Better Auth's
 *   bearer plugin: the signed token from `set-auth-token`);
 * - the browser's session cookie.
 *
 * A key wins over the ambient cookie where the route takes keys: a browser attaches the
 * cookie to every request, whoever made it, while a key was set by the caller on purpose. A
 * key on a route that refuses keys is ignored when the request also carries a session (that
 * is used); alone, it is refused. The cookie wins over a bearer session token: a browser app
 * may send an Authorization header of its own for another system (it is dropped, as ever),
 * and a native app has no cookie.
 */
import { sessionTokenFromCookie } from "../proxy/headers";

/** The start of every API key: what secret scanners and the gateway recognise keys by. */
export const API_KEY_PREFIX = "authgate_";
/** Random characters after the prefix (62 possible each: about 285 bits). */
export const API_KEY_RANDOM_LENGTH = 48;

export type Credential =
  /** `token`: the signed session token, the cache key for cookie and bearer alike. */
  | { readonly kind: "session"; readonly via: "cookie"; readonly token: string }
  | { readonly kind: "session"; readonly via: "bearer"; readonly token: string }
  | { readonly kind: "api_key"; readonly key: string };

export type CredentialChoice =
  | { readonly credential: Credential | null }
  /** `conflicting`: two different keys (X-Api-Key and Authorization); `keys-not-accepted`: a key alone on a route that refuses keys. */
  | { readonly refused: "conflicting-keys" | "keys-not-accepted" };

export interface CredentialHeaders {
  readonly authorization: string | null;
  readonly apiKey: string | null;
  readonly cookie: string | null;
}

export function isApiKey(value: string): boolean {
  return value.startsWith(API_KEY_PREFIX);
}

/** The token of an `Authorization: Bearer` header; undefined for any other scheme or none. */
export function bearerToken(authorization: string | null): string | undefined {
  if (authorization === null || authorization.length < 8) return undefined;
  if (authorization.slice(0, 7).toLowerCase() !== "bearer ") return undefined;
  const token = authorization.slice(7).trim();
  return token === "" ? undefined : token;
}

export function chooseCredential({ authorization, apiKey, cookie }: CredentialHeaders, acceptKeys: boolean): CredentialChoice {
  const bearer = bearerToken(authorization);
  const headerKey = apiKey?.trim() || undefined;
  const bearerKey = bearer !== undefined && isApiKey(bearer) ? bearer : undefined;
  if (acceptKeys && headerKey !== undefined && bearerKey !== undefined && headerKey !== bearerKey) return { refused: "conflicting-keys" };
  const key = headerKey ?? bearerKey;

  if (key !== undefined && acceptKeys) return { credential: { kind: "api_key", key } };
  const token = sessionTokenFromCookie(cookie);
  if (token !== undefined) return { credential: { kind: "session", via: "cookie", token } };
  // A bearer token that is not a key is a session token (a native app's, which has no cookie).
  if (bearer !== undefined && bearerKey === undefined) return { credential: { kind: "session", via: "bearer", token: bearer } };
  if (key !== undefined) return { refused: "keys-not-accepted" };
  return { credential: null };
}

/**
 * Whether a query string may carry an API key: the prefix anywhere in it, in any case, once
 * percent-escapes are read (`?api_key=authgate_…`, `?auth=Bearer%20authgate_…`, a bare
 * `?authgate_…`, `;`-separated pairs). Such a request is refused, since URLs end up in logs,
 * histories and Referer headers; a false alarm costs a 400, a miss a leaked key.
 */
export function queryHoldsApiKey(query: string): boolean {
  const lower = query.toLowerCase();
  if (lower.includes(API_KEY_PREFIX)) return true;
  if (!lower.includes("%")) return false;
  // Each escape on its own, so that one malformed escape hides nothing after it.
  return lower.replace(/%([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))).toLowerCase().includes(API_KEY_PREFIX);
}
