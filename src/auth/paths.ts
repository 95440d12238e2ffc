/**
 * Where Better Auth is mounted; everything else under /api/ is proxied. Kept apart from
 * ./index.ts so that the proxy thread can know the path without loading Better Auth.
 */
export const AUTH_BASE_PATH = "/api/auth";
