import type { Identity, IdentityResolver } from "../auth/identity";
import type { IdentityHeaders } from "../proxy/headers";
import { acceptsKeys, readsSession, refusal } from "./policy";
import type { Route } from "./table";

/** Who is calling a route, once let through: their identity (null: anonymous) and the route's JWT. */
export interface Caller {
  readonly identity: Identity | null;
  /** The JWT for the route's audience; undefined for an anonymous caller or a static route. */
  readonly token: string | undefined;
}

/**
 * The policy stage's second half, for HTTP requests (the app's `resolve`) and WebSocket
 * handshakes alike: the session looked up where the route reads one, the route's policy
 * applied (src/routes/policy.ts), and the JWT derived for the route's audience. Throws the
 * refusal (401, 403) or the auth service's failure (503) as a GatewayError.
 */
export function createCallerCheck(identities: IdentityResolver) {
  return async function callerOf(route: Route, headers: Headers): Promise<Caller> {
    const identity = readsSession(route) ? await identities.identify(headers, acceptsKeys(route)) : null;
    const refused = refusal(route, identity?.claims ?? null);
    if (refused) throw refused;
    if (!identity || route.kind !== "upstream") return { identity, token: undefined };
    // A cached token comes back as a string, without the microtask an await would cost.
    const token = identities.tokenFor(identity, route.audience);
    return { identity, token: typeof token === "string" ? token : await token };
  };
}

export type CallerCheck = ReturnType<typeof createCallerCheck>;

/** X-Auth-Request-User and -Email, where the route asks for them and there is a caller. */
export function identityHeadersFor(route: Route, identity: Identity | null): IdentityHeaders | undefined {
  if (!identity || route.kind !== "upstream" || !route.identityHeaders) return undefined;
  return { user: identity.claims.sub, email: identity.claims.email };
}
