/**
 * Where Better Auth is mounted (reserved: no route of the table may shadow it). Kept apart from
 * ./index.ts so that the proxy thread can know the path without loading Better Auth.
 */
export const AUTH_BASE_PATH = "/api/auth";

/**
 * Better Auth routes that end sessions. After one succeeds through this instance, its cached
 * sessions are dropped and open WebSockets of ended sessions closed at once; while the shared
 * session store (Redis) is unreachable, they are refused, since the removal could not reach it.
 * change-password is here for its `revokeOtherSessions` option, reset-password because a reset
 * ends the user's other sessions.
 */
export const SESSION_ENDING_ROUTES = /\/(sign-out|revoke-session|revoke-sessions|revoke-other-sessions|change-password|reset-password)$/;
