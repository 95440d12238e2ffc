import { CLIENT_IP_HEADER } from "../ops/request-context";

/** What a route with `identity_headers = true` sends besides the JWT (oauth2-proxy's names). */
const IDENTITY_USER_HEADER = "x-auth-request-user";
const IDENTITY_EMAIL_HEADER = "x-auth-request-email";
/**
 * oauth2-proxy's whole family (`X-Auth-Request-Groups`, `-Access-Token`, …): a legacy app that
 * reads one would take the client's word for it, so a client's are dropped on every route.
 */
const IDENTITY_HEADER_FAMILY = "x-auth-request-";

/**
 * Header rules for both directions, as pure functions so they can be tested as tables.
 */

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message:
 * they are never forwarded. `host` is the backend's own (fetch sets it from the URL),
 * https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
 */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/** Headers the gateway sets itself; whatever a client sent under these names is discarded. */
const GATEWAY_OWNED = [
  "host",
  "authorization",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "forwarded",
  "x-request-id",
  // An API key is for the gateway: the upstream gets the JWT instead (src/auth/credential.ts).
  "x-api-key",
  CLIENT_IP_HEADER,
  IDENTITY_USER_HEADER,
  IDENTITY_EMAIL_HEADER,
];

/**
 * Other headers that backends and frameworks read as "the client's address", "who the user
 * is" or "which URL was asked for" (nginx's X-Real-IP, CDNs' client-IP headers; REMOTE_USER
 * conventions; IIS URL Rewrite's and Symfony's original-URL headers, which would let a request
 * to a public route be served as another path). The gateway does not set them, and a client
 * must not either: a backend that trusts one would take the client's word for it. The whole
 * X-Forwarded-* and X-Auth-Request-* families go too (FAMILIES below).
 */
const SPOOFABLE = [
  "x-real-ip",
  "x-client-ip",
  "client-ip",
  "true-client-ip",
  "cf-connecting-ip",
  "fastly-client-ip",
  "x-cluster-client-ip",
  "remote-user",
  "x-remote-user",
  "x-webauth-user",
  "x-original-url",
  "x-rewrite-url",
  "x-original-uri",
];

/**
 * Prefixes of header families a client may not send at all: every X-Forwarded-* (the gateway
 * sets -For, -Proto and -Host itself; -Port, -Prefix, and oauth2-proxy's -User, -Email,
 * -Groups, -Access-Token … would be believed by some backend) and oauth2-proxy's
 * X-Auth-Request-* (the gateway sets -User and -Email where a route asks for them).
 */
const FAMILIES = ["x-forwarded-", IDENTITY_HEADER_FAMILY];

function inDroppedFamily(name: string): boolean {
  if (!name.startsWith("x-")) return false;
  for (const family of FAMILIES) if (name.startsWith(family)) return true;
  return false;
}

/**
 * `Expect: 100-continue` was for the gateway: Bun has already told the client to go on, and
 * the body is streamed to the backend either way.
 */
const ANSWERED_BY_GATEWAY = ["expect"];

/**
 * Every request header the gateway drops, whatever else it does. Underscore spellings of these
 * go too: CGI, PHP and WSGI read `X_Forwarded_For` as `X-Forwarded-For`.
 */
const DROPPED = new Set([...HOP_BY_HOP, ...GATEWAY_OWNED, ...SPOOFABLE, ...ANSWERED_BY_GATEWAY]);

/** Better Auth's cookies (session token, cached session data, "don't remember me"). */
const AUTH_COOKIE = /^(?:__Secure-|__Host-)?better-auth\./;

/** The header names a `Connection` value lists (hop-by-hop too), or undefined without one. */
function namedInConnection(connection: string | null): Set<string> | undefined {
  if (!connection) return undefined;
  const names = new Set<string>();
  for (const token of connection.split(",")) {
    const name = token.trim().toLowerCase();
    if (name) names.add(name);
  }
  return names;
}

export function removeHopByHop(headers: Headers): void {
  // Headers named in `Connection` are hop-by-hop too.
  for (const name of namedInConnection(headers.get("connection")) ?? []) headers.delete(name);
  for (const name of HOP_BY_HOP) headers.delete(name);
}

/**
 * The client's `Cookie` header without Better Auth's cookies, byte for byte otherwise;
 * null when nothing is left.
 */
export function withoutAuthCookies(cookieHeader: string): string | null {
  const kept = cookieHeader
    .split(";")
    .map((pair) => pair.trim())
    .filter((pair) => pair !== "" && !namesAuthCookie(pair));
  return kept.length > 0 ? kept.join("; ") : null;
}

/**
 * Whether a `;`-separated pair is, or hides, one of Better Auth's cookies. RFC 2965 separated
 * cookies with commas, and backends that still read it that way would find the session cookie
 * in `theme=dark, better-auth.session_token=…`: such a pair goes as a whole.
 */
function namesAuthCookie(pair: string): boolean {
  if (AUTH_COOKIE.test(cookieName(pair))) return true;
  return pair.includes(",") && pair.split(",").some((part) => AUTH_COOKIE.test(cookieName(part.trim())));
}

/** Better Auth's session cookie, with or without the prefix it gets on HTTPS. */
const SESSION_COOKIE = /^(?:__Secure-)?better-auth\.session_token$/;

/**
 * The session cookie's value in a `Cookie` header (the signed token exactly as the browser
 * sends it), or undefined. It keys the cache of validated sessions; when a header carries
 * several session cookies, all of their values together are the key, so the cache can never
 * answer for a different cookie than the one Better Auth validated.
 */
export function sessionTokenFromCookie(cookieHeader: string | null): string | undefined {
  if (!cookieHeader) return undefined;
  let found: string | undefined;
  for (const pair of cookieHeader.split(";")) {
    const trimmed = pair.trim();
    const name = cookieName(trimmed);
    if (!SESSION_COOKIE.test(name)) continue;
    const value = trimmed.slice(name.length + 1);
    found = found === undefined ? value : `${found};${value}`;
  }
  return found || undefined;
}

function cookieName(pair: string): string {
  const equals = pair.indexOf("=");
  return equals === -1 ? pair : pair.slice(0, equals);
}

/** The forwarding headers' values, as established from the socket and TRUSTED_PROXIES. */
export interface Forwarding {
  /** The client's sane X-Request-Id, or one the gateway generated. */
  requestId: string;
  /** The trusted X-Forwarded-For chain with the socket peer appended, or just the peer. */
  forwardedFor: string | undefined;
  /** "http" or "https", as the client reached the gateway (or its trusted proxy). */
  forwardedProto: string;
  /** The Host the client addressed. */
  forwardedHost: string;
}

/** Who the caller is, for a route's identity headers. */
export interface IdentityHeaders {
  user: string;
  email: string;
}

/**
 * Request headers for the backend: strip what the client may not decide (hop-by-hop,
 * its own Authorization, identity and forwarding headers, Better Auth's cookies), then inject
 * the gateway's own: the JWT (none for an anonymous caller), the identity headers if the route
 * asks for them, and the forwarding headers. Whatever `Authorization` an upstream sees is the
 * gateway's.
 */
export function upstreamRequestHeaders(
  incoming: Headers,
  token: string | undefined,
  forwarding: Forwarding,
  identity?: IdentityHeaders,
): Headers {
  const headers = new Headers(incoming);
  // One pass over the names the client sent, deleting only those present: cheaper on the hot
  // path than deleting each of the ~30 dropped names in turn.
  const connectionNamed = namedInConnection(incoming.get("connection"));
  for (const name of incoming.keys()) {
    const dashed = name.includes("_") ? name.replaceAll("_", "-") : name;
    if (DROPPED.has(dashed) || connectionNamed?.has(name) || inDroppedFamily(dashed)) {
      headers.delete(name);
    }
  }
  // A client's content-length is kept (the body streams with that length) unless the
  // client also sent transfer-encoding: fetch would send both, and the two would disagree.
  if (incoming.has("transfer-encoding")) headers.delete("content-length");

  const cookie = incoming.get("cookie");
  headers.delete("cookie");
  const keptCookies = cookie === null ? null : withoutAuthCookies(cookie);
  if (keptCookies !== null) headers.set("cookie", keptCookies);

  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  if (identity) {
    headers.set(IDENTITY_USER_HEADER, identity.user);
    headers.set(IDENTITY_EMAIL_HEADER, identity.email);
  }
  headers.set("x-request-id", forwarding.requestId);
  if (forwarding.forwardedFor) headers.set("x-forwarded-for", forwarding.forwardedFor);
  headers.set("x-forwarded-proto", forwarding.forwardedProto);
  if (forwarding.forwardedHost) headers.set("x-forwarded-host", forwarding.forwardedHost);
  return headers;
}

/**
 * Response headers for the client: the backend's, minus hop-by-hop ones, plus any
 * session-refresh cookies Better Auth produced while validating the request.
 * `content-length` and `content-encoding` pass unchanged: the body is passed as received.
 */
export function downstreamResponseHeaders(upstream: Headers, sessionCookies: readonly string[]): Headers {
  const headers = new Headers(upstream);
  removeHopByHop(headers);
  for (const cookie of sessionCookies) headers.append("set-cookie", cookie);
  return headers;
}
