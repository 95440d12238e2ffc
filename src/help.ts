import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;

/** Environment variables: name, default, meaning (also README "Configuration"). */
const VARIABLES: [string, string, string][] = [
  ["PORT", "3000", "listen port"],
  ["HOST", "0.0.0.0", "listen address"],
  ["CONFIG_FILE", "-", "route table file (.toml, .yaml, .yml, .json), re-read on SIGHUP; not with the next three"],
  ["BACKEND_API_URL", "http://localhost:8080", "without CONFIG_FILE: where /api/* is forwarded (server-side only)"],
  ["STATIC_DIR", "-", "serve this directory at / as a single-page app, without sign-in"],
  ["FRONTEND_URL", "-", "forward / to this dev server, without sign-in (not with STATIC_DIR)"],
  ["DATABASE_URL", "./data/authgate.db", "SQLite file path, or a postgres:// URL"],
  ["DATABASE_POOL_SIZE", "10", "PostgreSQL connections per instance"],
  ["REDIS_URL", "-", "redis:// URL: Better Auth's secondary storage (sessions, rate limits)"],
  ["BETTER_AUTH_SECRET", "-", "required in production (32+ characters); generated and kept beside the database in development"],
  ["BETTER_AUTH_URL", "http://localhost:$PORT", "public origin: JWT issuer and audience, trusted origin"],
  ["TRUSTED_ORIGINS", "-", "extra trusted origins, comma-separated"],
  ["CORS_ORIGINS", "-", "front-ends on other origins (exact origins, comma-separated) allowed to call with credentials; trusted too"],
  ["TRUSTED_PROXIES", "-", "IPs/CIDRs whose X-Forwarded-* headers are believed"],
  ["PROXY_TIMEOUT_MS", "30000", "time the backend has for its response headers"],
  ["JWT_EXPIRATION", "15m", "JWT lifetime"],
  ["JWKS_ROTATION_DAYS", "-", "rotate the signing key every N days (off by default)"],
  ["JWKS_PUBLISH_DELAY_SECONDS", "60", "how long a new key is published before it signs"],
  ["MAX_BODY_BYTES", "1073741824", "largest request body forwarded; 0 = no limit"],
  ["RATE_LIMIT", "on in production", "Better Auth's per-client rate limiter (on/off)"],
  ["SESSION_CACHE_SECONDS", "5", "how long a validated session is trusted without a lookup; 0 = always look up"],
  ["SESSION_CACHE_ENTRIES", "10000", "most sessions (and JWTs) kept in memory"],
  ["LOG_LEVEL", "info", "debug, info, warn, error or silent"],
  ["METRICS_PORT", "-", "serve GET /metrics (Prometheus) on this port"],
  ["METRICS_TOKEN", "-", "serve GET /metrics on PORT to bearers of this token"],
  ["SHUTDOWN_TIMEOUT_MS", "10000", "how long SIGTERM waits for requests in flight"],
  ["PAGES", "on", "the sign-in pages (off: bring your own UI)"],
  ["PAGES_PATH", "/auth", "where the sign-in pages live"],
  ["APP_NAME", "authgate", "the name on the pages and in mail"],
  ["APP_LOGO_URL", "-", "a logo on the gateway's own origin, e.g. /logo.svg"],
  ["BRAND_COLOR", "#4f46e5", "buttons' and links' colour"],
  ["PAGES_TEMPLATE_DIR", "-", "files here replace the built-in templates of the same name"],
  ["SMTP_URL", "-", "smtp://user:pass@host:587 (STARTTLS) or smtps://…:465; none: mail goes to the log in development"],
  ["EMAIL_FROM", "-", "the sender (required with SMTP_URL)"],
  ["SMTP_TIMEOUT_MS", "10000", "deadline for the mail server (at most 12000)"],
  ["REQUIRE_EMAIL_VERIFICATION", "false", "sign-up sends a verification mail; unverified users cannot sign in"],
  ["GITHUB_CLIENT_ID/_SECRET", "-", "sign in with GitHub"],
  ["GOOGLE_CLIENT_ID/_SECRET", "-", "sign in with Google"],
  ["OIDC_PROVIDERS", "-", "ids of OpenID providers; each: OIDC_<ID>_ISSUER, _CLIENT_ID, _CLIENT_SECRET, [_NAME, _SCOPES]"],
];

/** `adminUsage`: the admin commands' lines (src/cli/commands.ts, loaded only for --help). */
export function helpText(adminUsage: string): string {
  const width = Math.max(...VARIABLES.map(([name]) => name.length));
  const defaults = Math.max(...VARIABLES.map(([, fallback]) => fallback.length));
  const rows = VARIABLES.map(([name, fallback, meaning]) => `  ${name.padEnd(width)}  ${fallback.padEnd(defaults)}  ${meaning}`);
  return `authgate ${VERSION}: an authentication gateway (Better Auth sessions in front, a streaming proxy with a JWT behind)

Usage:
  authgate [start]       start the gateway (migrates the database first)
  authgate migrate       create or update the database schema, then exit
  authgate healthcheck   exit 0 if the gateway on PORT answers GET /healthz, 1 otherwise
  authgate check-config  validate the configuration, print the route table; exit 0 or 1
  authgate --version     print the version
  authgate --help        print this help

Administration (on the configured database, beside running instances; --json on each; exit 0 done,
1 failed, 2 usage error; \`authgate user --help\` etc. for details):
${adminUsage}

Environment (a .env file in the working directory is read too):
  ${"NAME".padEnd(width)}  ${"DEFAULT".padEnd(defaults)}  MEANING
${rows.join("\n")}
`;
}
