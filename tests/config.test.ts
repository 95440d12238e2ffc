import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig, type Config } from "../src/config";

type Env = Record<string, string | undefined>;

/** Production with an acceptable secret: the rows below then test one rule at a time. */
const PROD: Env = { NODE_ENV: "production", BETTER_AUTH_SECRET: "x".repeat(40) };

/** loadConfig's ConfigError, or a failure if it returned instead of throwing. */
function configError(env: Env): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe("loadConfig defaults", () => {
  const config = loadConfig({});

  test.each<[string, (c: Config) => unknown, unknown]>([
    ["port", (c) => c.port, 3000],
    ["host", (c) => c.host, "0.0.0.0"],
    ["the one route: /api → BACKEND_API_URL's default", (c) => c.routes.map((r) => `${r.name} ${r.path} ${r.kind === "upstream" ? r.upstream.href : ""} ${r.auth}`), ["api /api http://localhost:8080/ required"]],
    ["databaseUrl", (c) => c.databaseUrl, "./data/authgate.db"],
    ["authSecret", (c) => c.authSecret, undefined],
    ["authUrl", (c) => c.authUrl.href, "http://localhost:3000/"],
    ["trustedOrigins", (c) => c.trustedOrigins, []],
    ["proxyTimeoutMs", (c) => c.proxyTimeoutMs, 30_000],
    ["jwtExpiration", (c) => c.jwtExpiration, "15m"],
    ["production", (c) => c.production, false],
  ])("%s", (_name, pick, expected) => {
    expect(pick(config)).toEqual(expected);
  });

  test("BETTER_AUTH_URL follows PORT when unset", () => {
    expect(loadConfig({ PORT: "4123" }).authUrl.href).toBe("http://localhost:4123/");
  });

  test("empty and blank variables count as unset", () => {
    const blank = loadConfig({ PORT: "", HOST: "  ", BACKEND_API_URL: "", JWT_EXPIRATION: " " });
    expect(blank.port).toBe(3000);
    expect(blank.host).toBe("0.0.0.0");
    expect(blank.routes[0]).toMatchObject({ upstream: new URL("http://localhost:8080/") });
    expect(blank.jwtExpiration).toBe("15m");
  });
});

describe("loadConfig overrides", () => {
  test.each<[string, Env, (c: Config) => unknown, unknown]>([
    ["PORT", { PORT: "8081" }, (c) => c.port, 8081],
    ["PORT 0 (any free port)", { PORT: "0" }, (c) => c.port, 0],
    ["PORT 65535", { PORT: "65535" }, (c) => c.port, 65535],
    ["PORT with surrounding spaces", { PORT: " 9000 " }, (c) => c.port, 9000],
    ["HOST", { HOST: "127.0.0.1" }, (c) => c.host, "127.0.0.1"],
    ["BACKEND_API_URL", { BACKEND_API_URL: "https://api.internal:9443" }, (c) => (c.routes[0]!.kind === "upstream" ? c.routes[0]!.upstream.href : ""), "https://api.internal:9443/"],
    ["BACKEND_API_URL with a path prefix", { BACKEND_API_URL: "http://b/v1/" }, (c) => (c.routes[0]!.kind === "upstream" ? c.routes[0]!.upstream.href : ""), "http://b/v1/"],
    ["DATABASE_URL", { DATABASE_URL: "/var/lib/authgate/db.sqlite" }, (c) => c.databaseUrl, "/var/lib/authgate/db.sqlite"],
    ["BETTER_AUTH_SECRET", { BETTER_AUTH_SECRET: "s".repeat(40) }, (c) => c.authSecret, "s".repeat(40)],
    ["BETTER_AUTH_URL", { BETTER_AUTH_URL: "https://auth.example.com" }, (c) => c.authUrl.href, "https://auth.example.com/"],
    ["BETTER_AUTH_URL ignores PORT", { PORT: "5000", BETTER_AUTH_URL: "https://auth.example.com" }, (c) => c.authUrl.origin, "https://auth.example.com"],
    ["PROXY_TIMEOUT_MS", { PROXY_TIMEOUT_MS: "2500" }, (c) => c.proxyTimeoutMs, 2500],
    ["PROXY_TIMEOUT_MS minimum", { PROXY_TIMEOUT_MS: "1" }, (c) => c.proxyTimeoutMs, 1],
    ["JWT_EXPIRATION 1h", { JWT_EXPIRATION: "1h" }, (c) => c.jwtExpiration, "1h"],
    ["JWT_EXPIRATION 900s", { JWT_EXPIRATION: "900s" }, (c) => c.jwtExpiration, "900s"],
    ["JWT_EXPIRATION 2 days", { JWT_EXPIRATION: "2 days" }, (c) => c.jwtExpiration, "2 days"],
    [
      "TRUSTED_ORIGINS normalised to origins",
      { TRUSTED_ORIGINS: "http://a.test, https://b.test/" },
      (c) => c.trustedOrigins,
      ["http://a.test", "https://b.test"],
    ],
    ["TRUSTED_ORIGINS empty items skipped", { TRUSTED_ORIGINS: ",http://a.test,, " }, (c) => c.trustedOrigins, ["http://a.test"]],
    ["NODE_ENV=production with a secret", { NODE_ENV: "production", BETTER_AUTH_SECRET: "x".repeat(40) }, (c) => c.production, true],
    ["NODE_ENV=development", { NODE_ENV: "development" }, (c) => c.production, false],
    ["production with a 32-character secret", { NODE_ENV: "production", BETTER_AUTH_SECRET: "s".repeat(32) }, (c) => c.authSecret, "s".repeat(32)],
    ["production with an https BETTER_AUTH_URL", { ...PROD, BETTER_AUTH_URL: "https://auth.example.com" }, (c) => c.authUrl.href, "https://auth.example.com/"],
    ["production with an http BETTER_AUTH_URL on localhost", { ...PROD, BETTER_AUTH_URL: "http://localhost:3000" }, (c) => c.authUrl.href, "http://localhost:3000/"],
    ["production with an http BETTER_AUTH_URL on 127.0.0.1", { ...PROD, BETTER_AUTH_URL: "http://127.0.0.1:8080" }, (c) => c.authUrl.href, "http://127.0.0.1:8080/"],
    ["production with an http BETTER_AUTH_URL elsewhere in 127/8", { ...PROD, BETTER_AUTH_URL: "http://127.10.20.30" }, (c) => c.authUrl.href, "http://127.10.20.30/"],
    ["production with an http BETTER_AUTH_URL on 127.1 (normalised)", { ...PROD, BETTER_AUTH_URL: "http://127.1" }, (c) => c.authUrl.href, "http://127.0.0.1/"],
    ["production with an http BETTER_AUTH_URL on [::1]", { ...PROD, BETTER_AUTH_URL: "http://[::1]:3000" }, (c) => c.authUrl.href, "http://[::1]:3000/"],
    ["production without BETTER_AUTH_URL (http://localhost)", PROD, (c) => c.authUrl.href, "http://localhost:3000/"],
    ["development with an http BETTER_AUTH_URL anywhere", { BETTER_AUTH_URL: "http://auth.example.com" }, (c) => c.authUrl.href, "http://auth.example.com/"],
    ["production with http TRUSTED_ORIGINS (the rule is BETTER_AUTH_URL's only)", { ...PROD, TRUSTED_ORIGINS: "http://a.test" }, (c) => c.trustedOrigins, ["http://a.test"]],
    ["REDIS_URL", { REDIS_URL: "redis://cache:6379" }, (c) => c.redisUrl, "redis://cache:6379"],
    ["REDIS_URL with a database index", { REDIS_URL: "redis://:pw@cache:6379/5" }, (c) => c.redisUrl, "redis://:pw@cache:6379/5"],
    ["REDIS_URL rediss:// with a trailing slash", { REDIS_URL: "rediss://cache/" }, (c) => c.redisUrl, "rediss://cache/"],
  ])("%s", (_name, env, pick, expected) => {
    expect(pick(loadConfig(env))).toEqual(expected);
  });
});

describe("loadConfig rejects bad values", () => {
  test.each<[string, Env, string]>([
    ["PORT not a number", { PORT: "abc" }, "PORT"],
    ["PORT out of range", { PORT: "70000" }, "PORT"],
    ["PORT negative", { PORT: "-1" }, "PORT"],
    ["BACKEND_API_URL not a URL", { BACKEND_API_URL: "not a url" }, "BACKEND_API_URL"],
    ["BACKEND_API_URL not http(s)", { BACKEND_API_URL: "ftp://x" }, "BACKEND_API_URL"],
    ["BACKEND_API_URL with a query", { BACKEND_API_URL: "http://b/?x=1" }, "BACKEND_API_URL"],
    ["BACKEND_API_URL with credentials", { BACKEND_API_URL: "http://u:p@b/" }, "BACKEND_API_URL"],
    ["PROXY_TIMEOUT_MS zero", { PROXY_TIMEOUT_MS: "0" }, "PROXY_TIMEOUT_MS"],
    ["PROXY_TIMEOUT_MS negative", { PROXY_TIMEOUT_MS: "-5" }, "PROXY_TIMEOUT_MS"],
    ["PROXY_TIMEOUT_MS fractional", { PROXY_TIMEOUT_MS: "1.5" }, "PROXY_TIMEOUT_MS"],
    ["JWT_EXPIRATION not a time span", { JWT_EXPIRATION: "soon" }, "JWT_EXPIRATION"],
    ["TRUSTED_ORIGINS with a non-URL", { TRUSTED_ORIGINS: "http://a.test, nope" }, "TRUSTED_ORIGINS"],
    ["TRUSTED_ORIGINS not http(s)", { TRUSTED_ORIGINS: "ws://a.test" }, "TRUSTED_ORIGINS"],
    ["BETTER_AUTH_URL with a path", { BETTER_AUTH_URL: "https://auth.example.com/app" }, "BETTER_AUTH_URL"],
    ["BETTER_AUTH_URL not a URL", { BETTER_AUTH_URL: "auth.example.com" }, "BETTER_AUTH_URL"],
    ["production without BETTER_AUTH_SECRET", { NODE_ENV: "production" }, "BETTER_AUTH_SECRET"],
    ["production with a blank BETTER_AUTH_SECRET", { NODE_ENV: "production", BETTER_AUTH_SECRET: "  " }, "BETTER_AUTH_SECRET"],
    ["production with a 31-character BETTER_AUTH_SECRET", { NODE_ENV: "production", BETTER_AUTH_SECRET: "s".repeat(31) }, "BETTER_AUTH_SECRET"],
    [
      "production with a BETTER_AUTH_SECRET short once trimmed",
      { NODE_ENV: "production", BETTER_AUTH_SECRET: `  ${"s".repeat(20)}            ` },
      "BETTER_AUTH_SECRET",
    ],
    ["production with an http BETTER_AUTH_URL on a public name", { ...PROD, BETTER_AUTH_URL: "http://auth.example.com" }, "BETTER_AUTH_URL"],
    ["production with an http BETTER_AUTH_URL on a private IP", { ...PROD, BETTER_AUTH_URL: "http://10.0.0.1:3000" }, "BETTER_AUTH_URL"],
    ["production with an http BETTER_AUTH_URL on 128.0.0.1", { ...PROD, BETTER_AUTH_URL: "http://128.0.0.1" }, "BETTER_AUTH_URL"],
    ["production with an http BETTER_AUTH_URL on a non-loopback IPv6", { ...PROD, BETTER_AUTH_URL: "http://[::2]" }, "BETTER_AUTH_URL"],
    ["production with an http BETTER_AUTH_URL on a name under localhost's", { ...PROD, BETTER_AUTH_URL: "http://localhost.example.com" }, "BETTER_AUTH_URL"],
    ["production with an http BETTER_AUTH_URL on a name starting 127.", { ...PROD, BETTER_AUTH_URL: "http://127.0.0.1.nip.io" }, "BETTER_AUTH_URL"],
    ["REDIS_URL not redis://", { REDIS_URL: "http://cache:6379" }, "REDIS_URL"],
    // Bun's client ignores ?db= and writes to database 0: refused rather than honoured somewhere else.
    ["REDIS_URL with ?db=", { REDIS_URL: "redis://:pw@cache:6379?db=5" }, "REDIS_URL"],
    ["REDIS_URL with a path that is not a database index", { REDIS_URL: "redis://cache:6379/five" }, "REDIS_URL"],
    ["REDIS_URL with a nested path", { REDIS_URL: "redis://:pw@cache:6379/5/x" }, "REDIS_URL"],
  ])("%s", (_name, env, variable) => {
    const error = configError(env);
    expect(error.name).toBe("ConfigError");
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain(variable);
    expect(error.message).toContain(variable);
    // A URL's credentials never appear in a message.
    expect(error.message).not.toContain("pw@");
  });

  test("every bad variable is reported, not only the first", () => {
    const error = configError({
      PORT: "abc",
      BACKEND_API_URL: "ftp://x",
      PROXY_TIMEOUT_MS: "0",
      JWT_EXPIRATION: "soon",
      TRUSTED_ORIGINS: "nope",
      BETTER_AUTH_URL: "https://a.test/path",
      NODE_ENV: "production",
    });
    const named = (variable: string) => error.problems.filter((problem) => problem.startsWith(variable));
    for (const variable of [
      "PORT",
      "BACKEND_API_URL",
      "PROXY_TIMEOUT_MS",
      "JWT_EXPIRATION",
      "TRUSTED_ORIGINS",
      "BETTER_AUTH_URL",
      "BETTER_AUTH_SECRET",
    ]) {
      expect({ variable, count: named(variable).length }).toEqual({ variable, count: 1 });
    }
    expect(error.problems).toHaveLength(7);
  });

  test("a problem quotes the value it rejected", () => {
    expect(configError({ PORT: "abc" }).problems[0]).toContain('"abc"');
    expect(configError({ ...PROD, BETTER_AUTH_URL: "http://auth.example.com" }).problems[0]).toContain('"http://auth.example.com"');
  });

  test("a short BETTER_AUTH_SECRET is reported by its length, never its value", () => {
    const error = configError({ NODE_ENV: "production", BETTER_AUTH_SECRET: "hunter2-hunter2" });
    expect(error.problems).toEqual(["BETTER_AUTH_SECRET must be at least 32 characters when NODE_ENV=production, got 15"]);
    expect(error.message).not.toContain("hunter2");
  });

  test("an http BETTER_AUTH_URL with a path in production gets both problems", () => {
    const error = configError({ ...PROD, BETTER_AUTH_URL: "http://a.test/path" });
    expect(error.problems).toHaveLength(2);
    expect(error.problems[0]).toStartWith("BETTER_AUTH_URL must be an origin without a path");
    expect(error.problems[1]).toStartWith("BETTER_AUTH_URL must be an https:// URL when NODE_ENV=production");
  });
});

test("the returned config is frozen", () => {
  const config = loadConfig({ PORT: "4000" });
  expect(Object.isFrozen(config)).toBe(true);
  expect(() => {
    (config as { port: number }).port = 1;
  }).toThrow(TypeError);
  expect(config.port).toBe(4000);
});
