import { ApiKeyRefused, AuthenticationRequired, Forbidden, type GatewayError } from "../errors";
import type { AllowRule, Route } from "./table";

/**
 * A route's access policy: whether a request needs the cross-site check, whether it needs a
 * session, and whether the signed-in caller is let through. Pure; each rule is a row in
 * tests/route-policy.test.ts.
 */

/** What `allow` is checked against: the session's user, as the JWT describes them. */
export interface SessionUser {
  readonly email: string;
  readonly email_verified: boolean;
  /** One role, or several separated by commas (Better Auth's admin plugin). */
  readonly role: string;
  /** How the caller came in; absent means a session. */
  readonly auth_method?: "session" | "api_key";
}

/**
 * The CSRF/origin check applies where a session cookie is used (`required` and `optional`
 * routes): on `none` routes no session is read, so a cross-site request has nothing to ride on.
 */
export function checksOrigin(route: Route): boolean {
  return route.auth !== "none";
}

/** Whether the gateway looks the caller's session up at all. */
export function readsSession(route: Route): boolean {
  return route.auth !== "none";
}

/** Whether an API key is a way in (on every route that reads a session, unless `allow.api_keys = false`). */
export function acceptsKeys(route: Route): boolean {
  return route.allow?.apiKeys ?? true;
}

/**
 * Whether the caller may use the route: undefined to go on, or the error to answer with.
 * `caller` is null when there is no valid session.
 */
export function refusal(route: Route, caller: SessionUser | null): GatewayError | undefined {
  if (caller === null) return route.auth === "required" ? unauthenticated() : undefined;
  // Checked where the credential is chosen too; here as well, so that no cache or re-check
  // path can let a key onto a route that refuses keys.
  if (caller.auth_method === "api_key" && !acceptsKeys(route)) return new ApiKeyRefused("keys-not-accepted");
  if (route.allow && !admits(route.allow, caller)) return new Forbidden();
  return undefined;
}

/**
 * The answer to a request without a session on an `auth = "required"` route: the one place
 * that decides it (a JSON 401 today, for API calls and navigations alike).
 */
function unauthenticated(): GatewayError {
  return new AuthenticationRequired();
}

/**
 * `emails`, `email_domains` and `roles` admit on any match (e-mails compared lower-cased; a
 * domain matches exactly, subdomains are listed separately; roles exactly, any of a user's
 * comma-separated roles); with none of them, every signed-in caller matches. `email_verified`
 * is required on top.
 */
export function admits(allow: AllowRule, caller: SessionUser): boolean {
  if (allow.emailVerified && !caller.email_verified) return false;
  if (allow.emails.length === 0 && allow.emailDomains.length === 0 && allow.roles.length === 0) return true;
  const email = caller.email.toLowerCase();
  if (allow.emails.includes(email)) return true;
  const at = email.lastIndexOf("@");
  if (at !== -1 && allow.emailDomains.includes(email.slice(at + 1))) return true;
  return allow.roles.length > 0 && caller.role.split(",").some((role) => allow.roles.includes(role.trim()));
}
