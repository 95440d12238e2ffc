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
 * ends the user's other sessions, the admin plugin's ban and removal because they end all of
 * a user's.
 */
export const SESSION_ENDING_ROUTES =
  /\/(sign-out|revoke-session|revoke-sessions|revoke-other-sessions|change-password|reset-password|admin\/(ban-user|revoke-user-session|revoke-user-sessions|remove-user))$/;

/**
 * Better Auth routes after which this instance drops its cached identities (and re-checks open
 * WebSockets): the session-ending ones, and the admin plugin's and API-key plugin's changes
 * of who may do what (a ban, a role, a removed user, a revoked or changed key).
 */
const OTHER_IDENTITY_CHANGES = /\/(update-user|delete-user|admin\/(set-role|unban-user|update-user|set-user-password)|api-key\/(delete|update))$/;
export const IDENTITY_CHANGING_ROUTES = { test: (path: string) => SESSION_ENDING_ROUTES.test(path) || OTHER_IDENTITY_CHANGES.test(path) };
