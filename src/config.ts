import { parseProviders, type Provider } from "./auth/providers";
import { parseEmailConfig, type EmailConfig } from "./email/config";
import { LOG_LEVELS, type LogLevel } from "./ops/log";
import { parsePagesConfig, type PagesConfig, type Theme } from "./pages/config";
import { compileTrustedProxies } from "./ops/request-context";
import { configFilePath, envHttpUrl, resolveRoutes, withoutCredentials, routesFromFile, type RouteDefaults } from "./routes/config-file";
import type { Route } from "./routes/table";

/**
 * Configuration is read from the environment once, at start-up, into a frozen object.
 * Every bad variable is reported (not only the first) so an operator fixes them in one go.
 */

export interface Config {
  /** Listen port. @default 3000 */
  readonly port: number;
  /** Listen address. @default "0.0.0.0" */
  readonly host: string;
  /** The route table (src/routes/config-file.ts): CONFIG_FILE's, or the one the environment implies. */
  readonly routes: readonly Route[];
  /** CONFIG_FILE as an absolute path (what SIGHUP re-reads); undefined: none. */
  readonly configFile: string | undefined;
  /** SQLite file path, or a `postgres://` URL. @default "./data/authgate.db" */
  readonly databaseUrl: string;
  /** Connections in the PostgreSQL pool. @default 10 */
  readonly databasePoolSize: number;
  /** Redis for Better Auth's secondary storage (sessions, rate-limit counters); undefined: none. */
  readonly redisUrl: string | undefined;
  /** Signing-key rotation interval in seconds (JWKS_ROTATION_DAYS); undefined: no rotation. */
  readonly jwksRotationSeconds: number | undefined;
  /** How long a new key is published before it signs (backends' JWKS cache). @default 60 */
  readonly jwksPublishDelaySeconds: number;
  /** Better Auth secret; undefined in development means "generate one and keep it beside the database". */
  readonly authSecret: string | undefined;
  /** Public origin of the gateway: JWT issuer and audience, and a trusted origin. */
  readonly authUrl: URL;
  /**
   * Origins trusted besides `authUrl`, by Better Auth's origin check and the gateway's CSRF
   * check: TRUSTED_ORIGINS and CORS_ORIGINS together.
   */
  readonly trustedOrigins: readonly string[];
  /**
   * Front-ends on other origins that may read the gateway's answers with credentials
   * (src/proxy/cors.ts): exact origins as browsers send them. @default [] (same-origin only)
   */
  readonly corsOrigins: readonly string[];
  /** Time the backend has to send its response headers. @default 30000 */
  readonly proxyTimeoutMs: number;
  /** JWT lifetime, as Better Auth / jose read it ("15m", "1h", "900s"). @default "15m" */
  readonly jwtExpiration: string;
  /** The same lifetime in seconds. */
  readonly jwtLifetimeSeconds: number;
  /** How long a validated session is trusted without a database lookup; 0 disables. @default 5 */
  readonly sessionCacheSeconds: number;
  /** Most sessions, and as many JWTs, cached in memory. @default 10000 */
  readonly sessionCacheEntries: number;
  /** Proxies whose X-Forwarded-* headers are believed (IPs and CIDRs). @default [] */
  readonly trustedProxies: readonly string[];
  /** Largest request body forwarded; 0 means no limit. @default 1 GiB */
  readonly maxBodyBytes: number;
  /** Better Auth's rate limiter, per client IP. @default on in production, off otherwise */
  readonly rateLimit: boolean;
  /** @default "info" */
  readonly logLevel: LogLevel;
  /** Port of a separate listener for GET /metrics (Prometheus); undefined: none. */
  readonly metricsPort: number | undefined;
  /** Bearer token that unlocks GET /metrics on the main port; undefined: not exposed there. */
  readonly metricsToken: string | undefined;
  /** How long SIGTERM/SIGINT waits for in-flight requests and streams. @default 10000 */
  readonly shutdownTimeoutMs: number;
  /** The sign-in pages (src/pages); undefined: PAGES=off. */
  readonly pages: PagesConfig | undefined;
  /** The pages' and the mails' name, logo, colour and templates. */
  readonly theme: Theme;
  /** Verification and password-reset mail (src/email). */
  readonly email: EmailConfig;
  /** GitHub, Google and OpenID Connect sign-in (src/auth/providers.ts). */
  readonly providers: readonly Provider[];
  readonly production: boolean;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("; "));
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

const GIB = 1024 ** 3;

/** Shortest BETTER_AUTH_SECRET accepted in production (Better Auth's own recommendation). */
const MIN_SECRET_LENGTH = 32;

/**
 * `localhost`, an IPv4 address in 127.0.0.0/8 or `[::1]`, as a parsed URL spells the host:
 * the WHATWG parser has already lower-cased names and normalised "127.1", "0x7f.0.0.1" and
 * "[0:0:0:0:0:0:0:1]" to their canonical forms.
 */
function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * CORS_ORIGINS: comma-separated origins exactly as a browser sends `Origin` (scheme, host,
 * optional port; a trailing slash is forgiven). One problem per bad entry; duplicates count once.
 */
export function parseCorsOrigins(raw: string | undefined, production: boolean, problems: string[]): string[] {
  const origins = new Set<string>();
  for (const item of (raw ?? "").split(",")) {
    const entry = item.trim();
    if (!entry) continue;
    if (entry === "*") {
      problems.push('CORS_ORIGINS cannot be "*": answers carry credentials (the session cookie), and browsers refuse "*" with them; list each origin');
      continue;
    }
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      problems.push(`CORS_ORIGINS entries must be http(s) origins such as https://app.example.com, got "${withoutCredentials(entry)}"`);
      continue;
    }
    if (url.origin !== entry.replace(/\/$/, "")) {
      // A path, query, fragment or user name, a default port, upper case, an IDN: the browser
      // would send something else, and the entry would never match.
      problems.push(
        `CORS_ORIGINS entries must be origins as browsers send them (scheme, host, optional port; no path, query or credentials): "${withoutCredentials(entry)}" is not, did you mean "${url.origin}"?`,
      );
      continue;
    }
    // The session cookie is sent to this origin's scripts' requests: plain http only on this machine.
    if (production && url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
      problems.push(
        `CORS_ORIGINS entries must be https:// origins when NODE_ENV=production (http:// only for localhost, 127.0.0.0/8 or [::1]), got "${url.origin}"`,
      );
      continue;
    }
    origins.add(url.origin);
  }
  return [...origins];
}

// jose's time-span grammar, as accepted by Better Auth's `expirationTime`.
const TIME_SPAN =
  /^(\d+(?:\.\d+)?) ?(sec|secs|second|seconds|s|minute|minutes|min|mins|m|hour|hours|hr|hrs|h|day|days|d|week|weeks|w|year|years|yr|yrs|y)$/i;

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800, y: 31_557_600 };

/** Seconds in a jose time span; "min"/"mins"/"minute" are minutes, "m" alone too. */
function timeSpanSeconds(span: string): number {
  const [, amount, unit] = TIME_SPAN.exec(span)!;
  const lower = unit!.toLowerCase();
  const key = lower.startsWith("mi") || lower === "m" ? "m" : lower.startsWith("h") ? "h" : lower[0]!;
  return Math.round(Number(amount) * UNIT_SECONDS[key]!);
}

/** What a route leaves out comes from the environment (also for describeRoutes: what is not worth printing). */
export function routeDefaults(config: Pick<Config, "proxyTimeoutMs" | "maxBodyBytes" | "authUrl" | "pages">): RouteDefaults {
  return {
    proxyTimeoutMs: config.proxyTimeoutMs,
    maxBodyBytes: config.maxBodyBytes,
    audience: config.authUrl.origin,
    pagesPath: config.pages?.path,
  };
}

/** `cwd`: what CONFIG_FILE and STATIC_DIR are relative to. */
export function loadConfig(env: Env, cwd: string = process.cwd()): Config {
  const problems: string[] = [];
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };

  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  };

  const httpUrl = (name: string, raw: string): URL | undefined => envHttpUrl(name, raw, problems);

  const port = integer("PORT", 3000, 0, 65535);
  const host = read("HOST") ?? "0.0.0.0";

  const authUrlRaw = read("BETTER_AUTH_URL") ?? `http://localhost:${port}`;
  const authUrlParsed = httpUrl("BETTER_AUTH_URL", authUrlRaw);
  if (authUrlParsed && authUrlParsed.pathname !== "/") {
    problems.push(`BETTER_AUTH_URL must be an origin without a path, got "${withoutCredentials(authUrlRaw)}"`);
  }
  const authUrl = authUrlParsed ?? new URL(`http://localhost:${port}`);

  const trustedOrigins: string[] = [];
  for (const item of (read("TRUSTED_ORIGINS") ?? "").split(",")) {
    const raw = item.trim();
    if (!raw) continue;
    const url = httpUrl("TRUSTED_ORIGINS", raw);
    if (url) trustedOrigins.push(url.origin);
  }

  const production = env.NODE_ENV === "production";
  const corsOrigins = parseCorsOrigins(read("CORS_ORIGINS"), production, problems);
  const authSecret = read("BETTER_AUTH_SECRET");
  if (production && !authSecret) {
    problems.push("BETTER_AUTH_SECRET is required when NODE_ENV=production");
  } else if (production && authSecret!.length < MIN_SECRET_LENGTH) {
    // The value itself is never echoed, only its length.
    problems.push(
      `BETTER_AUTH_SECRET must be at least ${MIN_SECRET_LENGTH} characters when NODE_ENV=production, got ${authSecret!.length}`,
    );
  }
  // Session cookies and the JWT issuer travel over this origin: plain http only on this machine.
  if (production && authUrlParsed?.protocol === "http:" && !isLoopbackHost(authUrlParsed.hostname)) {
    problems.push(
      `BETTER_AUTH_URL must be an https:// URL when NODE_ENV=production (http:// only for localhost, 127.0.0.0/8 or [::1]), got "${withoutCredentials(authUrlRaw)}"`,
    );
  }

  const jwtExpiration = read("JWT_EXPIRATION") ?? "15m";
  let jwtLifetimeSeconds = 900;
  if (!TIME_SPAN.test(jwtExpiration) || (jwtLifetimeSeconds = timeSpanSeconds(jwtExpiration)) < 2) {
    problems.push(`JWT_EXPIRATION must be a time span of at least 2 s such as "15m", "900s" or "1h", got "${jwtExpiration}"`);
  }

  const trustedProxies = (read("TRUSTED_PROXIES") ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean);
  try {
    compileTrustedProxies(trustedProxies);
  } catch (error) {
    problems.push(`TRUSTED_PROXIES must be comma-separated IPs or CIDRs: ${(error as Error).message}`);
  }

  const rateLimitRaw = read("RATE_LIMIT")?.toLowerCase();
  if (rateLimitRaw !== undefined && !["on", "off", "true", "false", "1", "0"].includes(rateLimitRaw)) {
    problems.push(`RATE_LIMIT must be "on" or "off", got "${rateLimitRaw}"`);
  }
  const rateLimit = rateLimitRaw === undefined ? production : ["on", "true", "1"].includes(rateLimitRaw);

  const logLevel = (read("LOG_LEVEL")?.toLowerCase() ?? "info") as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);

  const redisUrl = read("REDIS_URL");
  if (redisUrl !== undefined) {
    // The URL itself is never echoed: it can carry a password.
    let parsed: URL | undefined;
    try {
      parsed = /^rediss?:\/\/[^\s]+$/.test(redisUrl) ? new URL(redisUrl) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!parsed) problems.push("REDIS_URL must be a redis:// or rediss:// URL");
    else if (parsed.search || parsed.hash) {
      // Bun's client ignores ?db=5 and would write to database 0.
      problems.push("REDIS_URL must not carry a query or fragment: put the database index in the path, as in redis://host:6379/5");
    } else if (!/^\/?(\d{1,5})?$/.test(parsed.pathname)) {
      problems.push(`REDIS_URL's path must be a database index such as /5, got "${parsed.pathname.slice(0, 40)}"`);
    }
  }

  const rotationRaw = read("JWKS_ROTATION_DAYS");
  const rotationDays = rotationRaw === undefined ? undefined : Number(rotationRaw);
  if (rotationDays !== undefined && !(/^\d+(\.\d+)?$/.test(rotationRaw!) && rotationDays > 0)) {
    problems.push(`JWKS_ROTATION_DAYS must be a positive number of days, got "${rotationRaw}"`);
  }

  const proxyTimeoutMs = integer("PROXY_TIMEOUT_MS", 30_000, 1, 3_600_000);
  const maxBodyBytes = integer("MAX_BODY_BYTES", GIB, 0, Number.MAX_SAFE_INTEGER);
  const configFile = configFilePath(env, cwd);
  // BACKEND_API_URL is validated (with the messages it always had) where it becomes the "api" route.
  const { pages, theme } = parsePagesConfig(read, authUrl.origin, cwd, problems);
  const email = parseEmailConfig(read, integer, production, problems);
  const providers = parseProviders(read, problems);
  const routes = resolveRoutes(env, routeDefaults({ proxyTimeoutMs, maxBodyBytes, authUrl, pages }), problems, cwd);

  const config: Config = {
    port,
    host,
    routes: Object.freeze(routes),
    configFile,
    databaseUrl: read("DATABASE_URL") ?? "./data/authgate.db",
    databasePoolSize: integer("DATABASE_POOL_SIZE", 10, 2, 1000),
    redisUrl,
    jwksPublishDelaySeconds: integer("JWKS_PUBLISH_DELAY_SECONDS", 60, 0, 86_400),
    jwksRotationSeconds: rotationDays && rotationDays > 0 ? Math.max(1, Math.round(rotationDays * 86_400)) : undefined,
    authSecret,
    authUrl,
    // A listed front-end's unsafe requests must pass both origin checks (src/proxy/cors.ts).
    trustedOrigins: Object.freeze([...new Set([...trustedOrigins, ...corsOrigins])]),
    corsOrigins: Object.freeze(corsOrigins),
    proxyTimeoutMs,
    jwtExpiration,
    jwtLifetimeSeconds,
    sessionCacheSeconds: integer("SESSION_CACHE_SECONDS", 5, 0, 3600),
    sessionCacheEntries: integer("SESSION_CACHE_ENTRIES", 10_000, 1, 10_000_000),
    trustedProxies: Object.freeze(trustedProxies),
    maxBodyBytes,
    rateLimit,
    logLevel,
    metricsPort: read("METRICS_PORT") === undefined ? undefined : integer("METRICS_PORT", 0, 1, 65535),
    metricsToken: read("METRICS_TOKEN"),
    shutdownTimeoutMs: integer("SHUTDOWN_TIMEOUT_MS", 10_000, 0, 3_600_000),
    pages: pages && Object.freeze(pages),
    theme: Object.freeze(theme),
    email: Object.freeze(email),
    providers: Object.freeze(providers.map((provider) => Object.freeze(provider))),
    production,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/**
 * The route table again, for SIGHUP: config.configFile re-read with the start-up defaults.
 * Only the file: the environment was checked at start-up and cannot change under a running
 * process. Without a file there is nothing to re-read and the table stays. Throws a
 * ConfigError with every problem; the caller then keeps the table it has.
 */
export function reloadRoutes(config: Config): Route[] {
  if (config.configFile === undefined) return [...config.routes];
  const problems: string[] = [];
  const routes = routesFromFile(config.configFile, routeDefaults(config), problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return routes;
}
