import type { Auth } from "./index";

/** Who is calling, as established from their session cookie. */
export interface Identity {
  readonly userId: string;
  readonly sessionId: string;
  /** JWT for the backend, signed with the gateway's current key. */
  readonly token: string;
  /** `Set-Cookie` values Better Auth produced while validating (a session refresh). */
  readonly setCookies: readonly string[];
}

/**
 * Validates the session in the request's cookies once and derives the backend JWT in
 * the same call: Better Auth's jwt plugin adds `set-auth-jwt` to get-session's response,
 * so no second session lookup (as `/token` would do) is needed.
 * Returns null when there is no valid session.
 */
export async function identify(auth: Auth, headers: Headers): Promise<Identity | null> {
  if (!headers.has("cookie")) return null;
  const { headers: responseHeaders, response } = await auth.api.getSession({
    headers,
    returnHeaders: true,
  });
  if (!response) return null;
  const token = responseHeaders.get("set-auth-jwt");
  if (!token) throw new Error("Better Auth returned a session without a JWT");
  return {
    userId: response.user.id,
    sessionId: response.session.id,
    token,
    setCookies: responseHeaders.getSetCookie(),
  };
}
