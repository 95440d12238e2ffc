/**
 * The route table: what the gateway does with a request, decided by its path. Parsed and
 * validated once (src/routes/config-file.ts) into these frozen objects; the gateway compiles
 * them into a matcher (src/routes/match.ts) and swaps the whole table on reload.
 */

/** `required`: a session or 401; `optional`: a JWT when there is a session; `none`: never a JWT. */
export type AuthMode = "required" | "optional" | "none";
export const AUTH_MODES: readonly AuthMode[] = ["required", "optional", "none"];

/**
 * Who may use a route once signed in. `emails`, `emailDomains` (lower-cased) and `roles`
 * admit on any match; when all are empty, every signed-in user matches them. `emailVerified`
 * is required on top of that when true. `apiKeys`: whether an API key is a way in (a session
 * always is).
 */
export interface AllowRule {
  readonly emails: readonly string[];
  readonly emailDomains: readonly string[];
  readonly roles: readonly string[];
  readonly emailVerified: boolean;
  readonly apiKeys: boolean;
}

interface RouteBase {
  /** Position in the table, from 0, for messages (`routes[2]`). */
  readonly index: number;
  /** Unique; used in logs and metrics. */
  readonly name: string;
  /** Prefix on segment boundaries: "/" or "/a/b", never with a trailing slash. */
  readonly path: string;
  readonly auth: AuthMode;
  /** Only on `auth = "required"` routes. */
  readonly allow: AllowRule | undefined;
}

export interface UpstreamRoute extends RouteBase {
  readonly kind: "upstream";
  /** http(s)://host[:port][/prefix]; ws(s) for WebSockets. */
  readonly upstream: URL;
  /** The backend's header deadline (PROXY_TIMEOUT_MS unless set). */
  readonly timeoutMs: number;
  /** Largest request body forwarded, 0 = no limit (MAX_BODY_BYTES unless set). */
  readonly maxBodyBytes: number;
  /** `/svc/x` reaches the upstream as `/x` (after the upstream's own prefix). */
  readonly stripPrefix: boolean;
  /** The JWT's `aud` (BETTER_AUTH_URL's origin unless set). */
  readonly audience: string;
  /** Also send X-Auth-Request-User and X-Auth-Request-Email. */
  readonly identityHeaders: boolean;
}

export interface StaticRoute extends RouteBase {
  readonly kind: "static";
  /** Absolute, resolved directory the files are served from. */
  readonly root: string;
  /** A GET/HEAD for a client-side route (no file, no extension, accepts HTML) gets index.html. */
  readonly spa: boolean;
}

export type Route = UpstreamRoute | StaticRoute;

/**
 * Paths the gateway answers itself. A route whose path is one of these, or under one, would
 * shadow it: a config error. `/swagger` is reserved as a raw prefix (`/swagger*`).
 */
export const RESERVED_PATHS: readonly string[] = ["/api/auth", "/healthz", "/readyz", "/metrics"];
export const RESERVED_PREFIXES: readonly string[] = ["/swagger"];
