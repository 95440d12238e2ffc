import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig, reloadRoutes } from "../src/config";
import { describeRoutes, parseRoutes, readConfigFile, resolveRoutes, type RouteDefaults } from "../src/routes/config-file";
import type { Route } from "../src/routes/table";

/**
 * The route table's contract. The error table is the documentation of every message a
 * config file can produce: each row is a document and the exact lines it is reported with.
 */

type Env = Record<string, string | undefined>;

const GIB = 1024 ** 3;
const DEFAULTS: RouteDefaults = { proxyTimeoutMs: 30_000, maxBodyBytes: GIB, audience: "http://localhost:3000" };

// A scratch directory: `web/` (a static root), `file.txt` (not a directory), `conf/web/` (a
// static root beside a config file that lives in `conf/`).
const dir = mkdtempSync(join(tmpdir(), "authgate-routes-"));
mkdirSync(join(dir, "web"));
mkdirSync(join(dir, "conf", "web"), { recursive: true });
writeFileSync(join(dir, "file.txt"), "not a directory");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A route as plain data: URL objects all compare equal under toEqual, their hrefs do not. */
function plain(route: Route): Record<string, unknown> {
  return route.kind === "upstream" ? { ...route, upstream: route.upstream.href } : { ...route };
}

function parse(document: unknown, defaults: RouteDefaults = DEFAULTS): { routes: Route[]; problems: string[] } {
  const problems: string[] = [];
  const routes = parseRoutes(document, defaults, dir, problems);
  return { routes, problems };
}

function resolve(env: Env, cwd: string = dir): { routes: Record<string, unknown>[]; problems: string[] } {
  const problems: string[] = [];
  const routes = resolveRoutes(env, DEFAULTS, problems, cwd).map(plain);
  return { routes, problems };
}

function write(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return name;
}

/** One upstream route and one static route, each valid, to be varied by a row. */
const api = (extra: Record<string, unknown> = {}) => ({ name: "api", path: "/api", upstream: "http://localhost:8080", ...extra });
const app = (extra: Record<string, unknown> = {}) => ({ name: "app", path: "/", static: "web", ...extra });
const routes = (...list: unknown[]) => ({ routes: list });

/** What every upstream route has unless it says otherwise. */
const UPSTREAM_DEFAULTS = {
  auth: "required",
  allow: undefined,
  kind: "upstream",
  timeoutMs: 30_000,
  maxBodyBytes: GIB,
  stripPrefix: false,
  audience: "http://localhost:3000",
  identityHeaders: false,
};

describe("parseRoutes reports every problem, one line each", () => {
  test.each<[string, unknown, string[]]>([
    // The document
    ["a document that is an array", [api()], ['CONFIG_FILE: must be a table with a "routes" array, got an array']],
    ["an empty YAML document (null)", null, ['CONFIG_FILE: must be a table with a "routes" array, got null']],
    ["an unknown top-level key", { ...routes(api()), rotues: [] }, ['CONFIG_FILE: unknown key "rotues"']],
    ["no routes", {}, ["routes: must be a non-empty array of tables ([[routes]] in TOML), got nothing"]],
    ["no routes, a misspelt key", { rotues: [api()] }, ['CONFIG_FILE: unknown key "rotues"', "routes: must be a non-empty array of tables ([[routes]] in TOML), got nothing"]],
    ["empty routes", routes(), ["routes: must be a non-empty array of tables ([[routes]] in TOML), got an empty array"]],
    ["routes a table ([routes] in TOML)", { routes: api() }, ["routes: must be a non-empty array of tables ([[routes]] in TOML), got a table"]],
    ["routes a string", { routes: "api" }, ['routes: must be a non-empty array of tables ([[routes]] in TOML), got "api"']],
    ["a route that is not a table", routes(api(), "app"), ['routes[1]: must be a table, got "app"']],

    // Unknown keys: a typo never silently drops a setting
    ["an unknown route key", routes(api({ strip_prefx: true })), ['routes[0]: unknown key "strip_prefx"']],
    ["an unknown allow key", routes(api({ allow: { email: ["a@b.c"] } })), ['routes[0].allow: unknown key "email"']],
    ["a key that only looks like the prototype's", routes(api({ constructor: 1 })), ['routes[0]: unknown key "constructor"']],

    // name
    ["no name", routes(api({ name: undefined })), ["routes[0].name: required"]],
    ["a name that is not a string", routes(api({ name: 5 })), ["routes[0].name: must be a string, got 5"]],
    ["a name with a space", routes(api({ name: "my api" })), ['routes[0].name: must be 1 to 64 letters, digits, "_", "." or "-", starting with a letter or digit, got "my api"']],
    ["a name starting with -", routes(api({ name: "-api" })), ['routes[0].name: must be 1 to 64 letters, digits, "_", "." or "-", starting with a letter or digit, got "-api"']],
    ["an empty name", routes(api({ name: "" })), ['routes[0].name: must be 1 to 64 letters, digits, "_", "." or "-", starting with a letter or digit, got ""']],
    ["a 65-character name", routes(api({ name: "a".repeat(65) })), [`routes[0].name: must be 1 to 64 letters, digits, "_", "." or "-", starting with a letter or digit, got "${"a".repeat(65)}"`]],
    ["a name taken twice", routes(api(), api({ path: "/v2" })), ['routes[1].name: "api" is also routes[0]\'s name']],

    // path
    ["no path", routes(api({ path: undefined })), ["routes[0].path: required"]],
    ["a path that is not a string", routes(api({ path: 5 })), ["routes[0].path: must be a string, got 5"]],
    ["a path without the leading /", routes(api({ path: "api" })), ['routes[0].path: must start with "/", got "api"']],
    ["two paths that differ only in case", routes(api(), api({ name: "API", path: "/API" })), ['routes[1].path: "/API" is also routes[0]\'s path ("/api", ignoring case)']],
    ["an audience where nobody is identified", routes(api({ auth: "none", audience: "x" })), ['routes[0].audience: only for routes that identify the caller (auth = "required" or "optional")']],
    ["identity headers where nobody is identified", routes(api({ auth: "none", identity_headers: true })), ['routes[0].identity_headers: only for routes that identify the caller (auth = "required" or "optional")']],
    ["a path with ;parameters", routes(api({ path: "/api;v=1" })), ['routes[0].path: must not contain ";", got "/api;v=1"']],
    ["a path with a trailing dot", routes(api({ path: "/api/v1./x" })), ['routes[0].path: must not have a segment ending in ".", got "/api/v1./x"']],
    ["a non-ASCII path", routes(api({ path: "/café" })), ['routes[0].path: must contain only ASCII characters, got "/café"']],
    ["a name the metrics use for the gateway", routes(api({ name: "auth" })), ['routes[0].name: "auth" is the metrics\' name for the gateway\'s own requests: choose another']],
    ["a path with a space", routes(api({ path: "/a b" })), ['routes[0].path: must not contain whitespace or control characters, got "/a b"']],
    ["a path with a tab", routes(api({ path: "/a\tb" })), ['routes[0].path: must not contain whitespace or control characters, got "/a\\tb"']],
    ["a path with a NUL", routes(api({ path: "/a\0" })), ['routes[0].path: must not contain whitespace or control characters, got "/a\\u0000"']],
    ["a path with a query", routes(api({ path: "/a?b" })), ['routes[0].path: must not contain "?", got "/a?b"']],
    ["a path with a fragment", routes(api({ path: "/a#b" })), ['routes[0].path: must not contain "#", got "/a#b"']],
    ["a path with percent-encoding", routes(api({ path: "/a%2Fb" })), ['routes[0].path: must not contain "%", got "/a%2Fb"']],
    ["a path with a backslash", routes(api({ path: "/a\\b" })), ['routes[0].path: must not contain a backslash, got "/a\\\\b"']],
    ["a path with //", routes(api({ path: "/a//b" })), ['routes[0].path: must not contain "//", got "/a//b"']],
    ["a path of // alone", routes(api({ path: "//" })), ['routes[0].path: must not contain "//", got "//"']],
    ["a path with a . segment", routes(api({ path: "/a/./b" })), ['routes[0].path: must not contain "." or ".." segments, got "/a/./b"']],
    ["a path with a .. segment", routes(api({ path: "/a/../b" })), ['routes[0].path: must not contain "." or ".." segments, got "/a/../b"']],
    ["a path ending in ..", routes(api({ path: "/a/.." })), ['routes[0].path: must not contain "." or ".." segments, got "/a/.."']],
    ["a path taken twice", routes(api(), api({ name: "v1" })), ['routes[1].path: "/api" is also routes[0]\'s path']],
    ["a path taken twice, once with a trailing slash", routes(api(), api({ name: "v1", path: "/api/" })), ['routes[1].path: "/api" is also routes[0]\'s path']],
    ["/ taken twice", routes(app(), app({ name: "app2" })), ['routes[1].path: "/" is also routes[0]\'s path']],

    // Reserved for the gateway
    ["/healthz", routes(api({ path: "/healthz" })), ['routes[0].path: "/healthz" is reserved for the gateway']],
    ["/readyz", routes(api({ path: "/readyz" })), ['routes[0].path: "/readyz" is reserved for the gateway']],
    ["/metrics", routes(api({ path: "/metrics" })), ['routes[0].path: "/metrics" is reserved for the gateway']],
    ["/api/auth", routes(api({ path: "/api/auth" })), ['routes[0].path: "/api/auth" is reserved for the gateway']],
    ["/api/auth/ (normalised first)", routes(api({ path: "/api/auth/" })), ['routes[0].path: "/api/auth" is reserved for the gateway']],
    ["under /api/auth", routes(api({ path: "/api/auth/x" })), ['routes[0].path: "/api/auth/x" is reserved for the gateway (under "/api/auth")']],
    ["under /healthz", routes(api({ path: "/healthz/deep" })), ['routes[0].path: "/healthz/deep" is reserved for the gateway (under "/healthz")']],
    ["/swagger", routes(api({ path: "/swagger" })), ['routes[0].path: "/swagger" is reserved for the gateway']],
    ["/swagger-ui (a raw prefix)", routes(api({ path: "/swagger-ui" })), ['routes[0].path: "/swagger-ui" is reserved for the gateway (starts with "/swagger")']],
    ["/swagger/json", routes(api({ path: "/swagger/json" })), ['routes[0].path: "/swagger/json" is reserved for the gateway (starts with "/swagger")']],

    // upstream or static
    ["neither upstream nor static", routes({ name: "x", path: "/x" }), ["routes[0]: give either upstream or static"]],
    ["both upstream and static", routes(api({ static: "web" })), ["routes[0]: upstream and static exclude each other"]],
    // With the kind unknown every setting is still checked, so nothing waits for a second run.
    ["both, and a bad setting of each kind", routes(api({ static: "web", timeout_ms: "5s", spa: "yes" })), [
      "routes[0]: upstream and static exclude each other",
      'routes[0].timeout_ms: must be a whole number from 1 to 3600000, got "5s"',
      'routes[0].spa: must be true or false, got "yes"',
    ]],
    ["neither, and a bad setting", routes({ name: "x", path: "/x", strip_prefix: "yes" }), ["routes[0]: give either upstream or static", 'routes[0].strip_prefix: must be true or false, got "yes"']],

    // upstream: never quoted back (it may carry credentials)
    ["an upstream that is not a string", routes(api({ upstream: 8080 })), ["routes[0].upstream: must be a string, got 8080"]],
    ["an upstream that is not a URL", routes(api({ upstream: "not a url" })), ["routes[0].upstream: not an http(s) URL"]],
    ["an upstream without a scheme", routes(api({ upstream: "localhost:8080" })), ["routes[0].upstream: not an http(s) URL"]],
    ["a ws:// upstream (ws follows http)", routes(api({ upstream: "ws://localhost:8080" })), ["routes[0].upstream: not an http(s) URL"]],
    ["an ftp:// upstream", routes(api({ upstream: "ftp://files" })), ["routes[0].upstream: not an http(s) URL"]],
    ["an upstream with credentials", routes(api({ upstream: "http://user:hunter2@backend" })), ["routes[0].upstream: must not carry credentials (user:password@); the URL is not shown"]],
    ["an upstream with a user only", routes(api({ upstream: "https://token@backend" })), ["routes[0].upstream: must not carry credentials (user:password@); the URL is not shown"]],
    ["an upstream with a query", routes(api({ upstream: "http://backend/?key=1" })), ["routes[0].upstream: must not carry a query or fragment"]],
    ["an upstream with a bare ?", routes(api({ upstream: "http://backend/v1?" })), ["routes[0].upstream: must not carry a query or fragment"]],
    ["an upstream with a fragment", routes(api({ upstream: "http://backend/#top" })), ["routes[0].upstream: must not carry a query or fragment"]],

    // auth
    ["a misspelt auth", routes(api({ auth: "requried" })), ['routes[0].auth: must be "required", "optional" or "none", got "requried"']],
    ["auth as a boolean", routes(api({ auth: true })), ['routes[0].auth: must be "required", "optional" or "none", got true']],
    ["auth in capitals", routes(api({ auth: "Required" })), ['routes[0].auth: must be "required", "optional" or "none", got "Required"']],

    // Numbers: whole, in range, never coerced from strings
    ["timeout_ms as a string", routes(api({ timeout_ms: "30000" })), ['routes[0].timeout_ms: must be a whole number from 1 to 3600000, got "30000"']],
    ["timeout_ms 0", routes(api({ timeout_ms: 0 })), ["routes[0].timeout_ms: must be a whole number from 1 to 3600000, got 0"]],
    ["timeout_ms above an hour", routes(api({ timeout_ms: 3_600_001 })), ["routes[0].timeout_ms: must be a whole number from 1 to 3600000, got 3600001"]],
    ["timeout_ms fractional", routes(api({ timeout_ms: 1.5 })), ["routes[0].timeout_ms: must be a whole number from 1 to 3600000, got 1.5"]],
    ["timeout_ms null", routes(api({ timeout_ms: null })), ["routes[0].timeout_ms: must be a whole number from 1 to 3600000, got null"]],
    ["max_body_bytes negative", routes(api({ max_body_bytes: -1 })), ["routes[0].max_body_bytes: must be a whole number from 0 to 9007199254740991, got -1"]],
    ["max_body_bytes beyond 2^53-1", routes(api({ max_body_bytes: 2 ** 53 })), ["routes[0].max_body_bytes: must be a whole number from 0 to 9007199254740991, got 9007199254740992"]],
    ["max_body_bytes with a unit", routes(api({ max_body_bytes: "1GB" })), ['routes[0].max_body_bytes: must be a whole number from 0 to 9007199254740991, got "1GB"']],

    // Booleans
    ["strip_prefix \"yes\"", routes(api({ strip_prefix: "yes" })), ['routes[0].strip_prefix: must be true or false, got "yes"']],
    ["identity_headers 1", routes(api({ identity_headers: 1 })), ["routes[0].identity_headers: must be true or false, got 1"]],
    ["spa \"true\"", routes(app({ spa: "true" })), ['routes[0].spa: must be true or false, got "true"']],

    // audience
    ["an empty audience", routes(api({ audience: "" })), ['routes[0].audience: must be a non-empty string, got ""']],
    ["a blank audience", routes(api({ audience: "  " })), ['routes[0].audience: must be a non-empty string, got "  "']],
    ["an audience that is not a string", routes(api({ audience: ["a", "b"] })), ["routes[0].audience: must be a non-empty string, got an array"]],

    // Settings of the other kind
    ["timeout_ms on a static route", routes(api(), app({ timeout_ms: 5000 })), ["routes[1].timeout_ms: only for upstream routes"]],
    ["every upstream setting on a static route", routes(app({ max_body_bytes: 1, strip_prefix: true, audience: "x", identity_headers: true })), [
      "routes[0].max_body_bytes: only for upstream routes",
      "routes[0].strip_prefix: only for upstream routes",
      "routes[0].audience: only for upstream routes",
      "routes[0].identity_headers: only for upstream routes",
    ]],
    ["spa on an upstream route", routes(api({ spa: true })), ["routes[0].spa: only for static routes"]],

    // static
    ["a static dir that does not exist", routes(app({ static: "missing" })), [`routes[0].static: ${join(dir, "missing")} is not a directory`]],
    ["a static dir that is a file", routes(app({ static: "file.txt" })), [`routes[0].static: ${join(dir, "file.txt")} is not a directory`]],
    ["an absolute static dir that does not exist", routes(app({ static: "/nonexistent-authgate-dir" })), ["routes[0].static: /nonexistent-authgate-dir is not a directory"]],
    ["an empty static", routes(app({ static: "" })), ['routes[0].static: must be a directory path, got ""']],
    ["a static that is not a string", routes(app({ static: true })), ["routes[0].static: must be a string, got true"]],

    // allow
    ["allow on an optional route", routes(api({ auth: "optional", allow: { emails: ["a@b.c"] } })), ['routes[0].allow: only for auth = "required" routes: with auth = "optional" there may be no signed-in user to check']],
    ["allow on a none route", routes(app({ auth: "none", allow: { email_verified: true } })), ['routes[0].allow: only for auth = "required" routes: with auth = "none" there may be no signed-in user to check']],
    ["allow not a table", routes(api({ allow: ["a@b.c"] })), ["routes[0].allow: must be a table, got an array"]],
    ["allow null (an empty YAML key)", routes(api({ allow: null })), ["routes[0].allow: must be a table, got null"]],
    ["an empty allow", routes(api({ allow: {} })), ["routes[0].allow: is empty: give emails, email_domains, roles, email_verified = true or api_keys = false, or remove it"]],
    ["an allow of empty lists", routes(api({ allow: { emails: [], email_domains: [], email_verified: false } })), ["routes[0].allow: is empty: give emails, email_domains, roles, email_verified = true or api_keys = false, or remove it"]],
    ["roles as one string", routes(api({ allow: { roles: "admin" } })), ['routes[0].allow.roles: must be an array of roles, got "admin"']],
    ["a role with a space", routes(api({ allow: { roles: ["site admin"] } })), ['routes[0].allow.roles[0]: must be a role name like "admin" (letters, digits, _ . -), got "site admin"']],
    ["a role with a comma (one role per entry)", routes(api({ allow: { roles: ["admin,user"] } })), ['routes[0].allow.roles[0]: must be a role name like "admin" (letters, digits, _ . -), got "admin,user"']],
    ["an empty role", routes(api({ allow: { roles: [""] } })), ['routes[0].allow.roles[0]: must be a role name like "admin" (letters, digits, _ . -), got ""']],
    ["api_keys not a boolean", routes(api({ allow: { api_keys: "no" } })), ['routes[0].allow.api_keys: must be true or false, got "no"']],
    ["an allow of empty roles and api_keys = true", routes(api({ allow: { roles: [], api_keys: true } })), ["routes[0].allow: is empty: give emails, email_domains, roles, email_verified = true or api_keys = false, or remove it"]],
    ["emails as one string", routes(api({ allow: { emails: "ada@example.com" } })), ['routes[0].allow.emails: must be an array of e-mail addresses, got "ada@example.com"']],
    ["an e-mail without @", routes(api({ allow: { emails: ["ada@example.com", "ada"] } })), ['routes[0].allow.emails[1]: must be an e-mail address like ada@example.com, got "ada"']],
    ["an e-mail with two @", routes(api({ allow: { emails: ["a@b@c"] } })), ['routes[0].allow.emails[0]: must be an e-mail address like ada@example.com, got "a@b@c"']],
    ["an e-mail with nothing before @", routes(api({ allow: { emails: ["@example.com"] } })), ['routes[0].allow.emails[0]: must be an e-mail address like ada@example.com, got "@example.com"']],
    ["an e-mail with nothing after @", routes(api({ allow: { emails: ["ada@"] } })), ['routes[0].allow.emails[0]: must be an e-mail address like ada@example.com, got "ada@"']],
    ["an e-mail with a space", routes(api({ allow: { emails: ["ada @example.com"] } })), ['routes[0].allow.emails[0]: must be an e-mail address like ada@example.com, got "ada @example.com"']],
    ["an e-mail that is not a string", routes(api({ allow: { emails: [5] } })), ["routes[0].allow.emails[0]: must be a string, got 5"]],
    ["email_domains as one string", routes(api({ allow: { email_domains: "example.com" } })), ['routes[0].allow.email_domains: must be an array of domains, got "example.com"']],
    ["a domain with a leading @ (a hint)", routes(api({ allow: { email_domains: ["@Example.com"] } })), ['routes[0].allow.email_domains[0]: must be a bare domain: write "example.com", not "@Example.com"']],
    ["a domain that is an e-mail", routes(api({ allow: { email_domains: ["ada@example.com"] } })), ['routes[0].allow.email_domains[0]: must be a bare domain like example.com, got "ada@example.com"']],
    ["a domain with a scheme", routes(api({ allow: { email_domains: ["https://example.com"] } })), ['routes[0].allow.email_domains[0]: must be a bare domain like example.com, got "https://example.com"']],
    ["a domain with a leading dot", routes(api({ allow: { email_domains: [".example.com"] } })), ['routes[0].allow.email_domains[0]: must be a bare domain like example.com, got ".example.com"']],
    ["a domain with an empty label", routes(api({ allow: { email_domains: ["example..com"] } })), ['routes[0].allow.email_domains[0]: must be a bare domain like example.com, got "example..com"']],
    ["an empty domain", routes(api({ allow: { email_domains: [""] } })), ['routes[0].allow.email_domains[0]: must be a bare domain like example.com, got ""']],
    ["email_verified \"yes\"", routes(api({ allow: { email_verified: "yes" } })), ['routes[0].allow.email_verified: must be true or false, got "yes"']],

    // Several routes, several problems: all of them, in table order
    ["the issue's examples, all at once", routes(
      api({ auth: "requried" }),
      api({ name: "b", path: "/b", strip_prefx: true }),
      api({ name: "c", path: "/c", upstream: "nope" }),
      api({ name: "d" }),
      api({ name: "e", path: "/healthz" }),
    ), [
      'routes[0].auth: must be "required", "optional" or "none", got "requried"',
      'routes[1]: unknown key "strip_prefx"',
      "routes[2].upstream: not an http(s) URL",
      'routes[3].path: "/api" is also routes[0]\'s path',
      'routes[4].path: "/healthz" is reserved for the gateway',
    ]],
  ])("%s", (_name, document, expected) => {
    expect(parse(document).problems).toEqual(expected);
  });

  test("credentials in an upstream are never echoed", () => {
    const { problems } = parse(routes(api({ upstream: "http://user:hunter2@backend" }), api({ name: "b", path: "/b", upstream: "user:hunter2@backend" })));
    expect(problems.join("\n")).not.toContain("hunter2");
  });
});

describe("parseRoutes resolves and normalises", () => {
  test("a minimal upstream route gets every default", () => {
    const { routes: [route], problems } = parse(routes(api()));
    expect(problems).toEqual([]);
    expect(plain(route!)).toEqual({ index: 0, name: "api", path: "/api", upstream: "http://localhost:8080/", ...UPSTREAM_DEFAULTS });
  });

  test("the defaults are the ones given (PROXY_TIMEOUT_MS, MAX_BODY_BYTES, BETTER_AUTH_URL's origin)", () => {
    const { routes: [route] } = parse(routes(api()), { proxyTimeoutMs: 1234, maxBodyBytes: 0, audience: "https://auth.example.com" });
    expect(route).toMatchObject({ timeoutMs: 1234, maxBodyBytes: 0, audience: "https://auth.example.com" });
  });

  test("a minimal static route: auth required, no spa, root against the base directory", () => {
    const { routes: [route], problems } = parse(routes(app()));
    expect(problems).toEqual([]);
    expect(route).toEqual({ index: 0, name: "app", path: "/", auth: "required", allow: undefined, kind: "static", root: join(dir, "web"), spa: false });
  });

  test("every setting given", () => {
    const { routes: list, problems } = parse(routes(
      api({
        path: "/svc/",
        upstream: "https://backend.internal:9443/v1/",
        timeout_ms: 5000,
        max_body_bytes: 0,
        strip_prefix: true,
        audience: "urn:svc",
        identity_headers: true,
        allow: { emails: ["Ada@Example.com", "ada@example.com", "bob@x.org"], email_domains: ["Example.COM"], email_verified: true },
      }),
      app({ path: "/app", static: join(dir, "web"), spa: true, auth: "none" }),
      api({ name: "opt.v2_x-1", path: "/opt", auth: "optional" }),
    ));
    expect(problems).toEqual([]);
    expect(list.map(plain)).toEqual([
      {
        index: 0,
        name: "api",
        path: "/svc",
        auth: "required",
        // Lower-cased, and a duplicate once lower-cased kept once.
        allow: { emails: ["ada@example.com", "bob@x.org"], emailDomains: ["example.com"], roles: [], emailVerified: true, apiKeys: true },
        kind: "upstream",
        upstream: "https://backend.internal:9443/v1/",
        timeoutMs: 5000,
        maxBodyBytes: 0,
        stripPrefix: true,
        audience: "urn:svc",
        identityHeaders: true,
      },
      { index: 1, name: "app", path: "/app", auth: "none", allow: undefined, kind: "static", root: join(dir, "web"), spa: true },
      { index: 2, name: "opt.v2_x-1", path: "/opt", upstream: "http://localhost:8080/", ...UPSTREAM_DEFAULTS, auth: "optional" },
    ]);
  });

  test.each<[string, string, string]>([
    ["a trailing slash is removed", "/api/", "/api"],
    ["/ stays /", "/", "/"],
    ["a deep path", "/a/b/c/", "/a/b/c"],
    ["/api is not reserved (the gateway's /api/auth wins over it)", "/api", "/api"],
    ["/api/authx is not under /api/auth", "/api/authx", "/api/authx"],
    ["/healthzz is not /healthz", "/healthzz", "/healthzz"],
    ["a path that merely contains dots", "/v1.2/..x", "/v1.2/..x"],
  ])("path: %s", (_name, path, expected) => {
    const { routes: [route], problems } = parse(routes(api({ path })));
    expect(problems).toEqual([]);
    expect(route!.path).toBe(expected);
  });

  test.each<[string, Record<string, unknown>, unknown]>([
    ["email_verified alone", { email_verified: true }, { emails: [], emailDomains: [], roles: [], emailVerified: true, apiKeys: true }],
    // Naming addresses requires them verified, unless the rule says otherwise.
    ["emails alone: verified required", { emails: ["A@B.C"] }, { emails: ["a@b.c"], emailDomains: [], roles: [], emailVerified: true, apiKeys: true }],
    ["email_domains alone: verified required", { email_domains: ["Sub.Example.com", "bücher.de"] }, { emails: [], emailDomains: ["sub.example.com", "bücher.de"], roles: [], emailVerified: true, apiKeys: true }],
    ["emails with email_verified = false", { emails: ["a@b.c"], email_verified: false }, { emails: ["a@b.c"], emailDomains: [], roles: [], emailVerified: false, apiKeys: true }],
    // Roles are given by an operator, not claimed at sign-up: no verified e-mail implied.
    ["roles alone", { roles: ["admin", "ops"] }, { emails: [], emailDomains: [], roles: ["admin", "ops"], emailVerified: false, apiKeys: true }],
    ["api_keys = false alone: every signed-in user, no keys", { api_keys: false }, { emails: [], emailDomains: [], roles: [], emailVerified: false, apiKeys: false }],
  ])("allow: %s", (_name, allow, expected) => {
    const { routes: [route], problems } = parse(routes(api({ allow })));
    expect(problems).toEqual([]);
    expect(route!.allow).toEqual(expected as never);
  });

  test("allow on a static route that requires a session", () => {
    const { routes: [route], problems } = parse(routes(app({ allow: { email_domains: ["example.com"] } })));
    expect(problems).toEqual([]);
    expect(route!.allow?.emailDomains).toEqual(["example.com"]);
  });

  test("routes, allow rules and their lists are frozen", () => {
    const { routes: [route] } = parse(routes(api({ allow: { emails: ["a@b.c"] } })));
    expect(Object.isFrozen(route)).toBe(true);
    expect(Object.isFrozen(route!.allow)).toBe(true);
    expect(Object.isFrozen(route!.allow!.emails)).toBe(true);
    expect(Object.isFrozen(route!.allow!.emailDomains)).toBe(true);
  });

  test("only valid routes are returned beside the problems", () => {
    const { routes: list, problems } = parse(routes(api(), api({ name: "bad", path: "/bad", auth: "nope" }), app()));
    expect(problems).toHaveLength(1);
    expect(list.map((route) => route.name)).toEqual(["api", "app"]);
  });
});

describe("resolveRoutes without a config file: the environment's table", () => {
  const apiRoute = { index: 0, name: "api", path: "/api", upstream: "http://localhost:8080/", ...UPSTREAM_DEFAULTS };

  test.each<[string, Env, Record<string, unknown>[]]>([
    ["nothing set: /api → http://localhost:8080, as always", {}, [apiRoute]],
    ["blank variables count as unset", { CONFIG_FILE: " ", BACKEND_API_URL: "", STATIC_DIR: "", FRONTEND_URL: " " }, [apiRoute]],
    ["BACKEND_API_URL", { BACKEND_API_URL: "https://api.internal:9443/v1/" }, [{ ...apiRoute, upstream: "https://api.internal:9443/v1/" }]],
    ["STATIC_DIR (relative to the working directory) adds a static SPA at /", { STATIC_DIR: "./web" }, [
      apiRoute,
      { index: 1, name: "app", path: "/", auth: "none", allow: undefined, kind: "static", root: join(dir, "web"), spa: true },
    ]],
    ["STATIC_DIR absolute", { STATIC_DIR: join(dir, "conf", "web") }, [
      apiRoute,
      { index: 1, name: "app", path: "/", auth: "none", allow: undefined, kind: "static", root: join(dir, "conf", "web"), spa: true },
    ]],
    ["FRONTEND_URL adds a dev server at / without auth", { FRONTEND_URL: "http://localhost:5173" }, [
      apiRoute,
      { index: 1, name: "frontend", path: "/", upstream: "http://localhost:5173/", ...UPSTREAM_DEFAULTS, auth: "none" },
    ]],
  ])("%s", (_name, env, expected) => {
    const { routes: list, problems } = resolve(env);
    expect(problems).toEqual([]);
    expect(list).toEqual(expected);
  });

  test.each<[string, Env, string[]]>([
    ["STATIC_DIR and FRONTEND_URL", { STATIC_DIR: "./web", FRONTEND_URL: "http://localhost:5173" }, [
      "STATIC_DIR and FRONTEND_URL exclude each other (both would serve /): set one, or describe the routes in a CONFIG_FILE",
    ]],
    ["STATIC_DIR that is not a directory", { STATIC_DIR: "missing" }, [`STATIC_DIR: ${join(dir, "missing")} is not a directory`]],
    ["FRONTEND_URL not a URL", { FRONTEND_URL: "localhost:5173" }, ['FRONTEND_URL must be an http(s) URL, got "localhost:5173"']],
    ["FRONTEND_URL with credentials", { FRONTEND_URL: "http://u:p@localhost:5173" }, ["FRONTEND_URL must not carry a query, fragment or credentials"]],
    // BACKEND_API_URL's messages are the ones it had before route tables.
    ["BACKEND_API_URL not http(s)", { BACKEND_API_URL: "ftp://x" }, ['BACKEND_API_URL must be an http(s) URL, got "ftp://x"']],
    ["BACKEND_API_URL with a query", { BACKEND_API_URL: "http://b/?x=1" }, ["BACKEND_API_URL must not carry a query, fragment or credentials"]],
    // A value that is no URL is echoed, but never what precedes an "@" in it.
    ["FRONTEND_URL without a scheme, with a password", { FRONTEND_URL: "dev:hunter2@localhost:5173" }, ['FRONTEND_URL must be an http(s) URL, got "***@localhost:5173"']],
    ["BACKEND_API_URL of another scheme, with a password", { BACKEND_API_URL: "ftp://u:hunter2@x" }, ['BACKEND_API_URL must be an http(s) URL, got "ftp://***@x"']],
    ["a password with an @ in it", { BACKEND_API_URL: "ftp://u:hunt@er2@x/p" }, ['BACKEND_API_URL must be an http(s) URL, got "ftp://***@x/p"']],
  ])("%s is an error", (_name, env, expected) => {
    expect(resolve(env).problems).toEqual(expected);
  });
});

describe("resolveRoutes with CONFIG_FILE", () => {
  test.each<[string, Env, string[]]>([
    ["BACKEND_API_URL", { BACKEND_API_URL: "http://b" }, ["BACKEND_API_URL cannot be combined with CONFIG_FILE: put that route in the file"]],
    ["STATIC_DIR", { STATIC_DIR: "./web" }, ["STATIC_DIR cannot be combined with CONFIG_FILE: put that route in the file"]],
    ["FRONTEND_URL", { FRONTEND_URL: "http://localhost:5173" }, ["FRONTEND_URL cannot be combined with CONFIG_FILE: put that route in the file"]],
    ["all three", { BACKEND_API_URL: "http://b", STATIC_DIR: "./web", FRONTEND_URL: "http://f" }, [
      "BACKEND_API_URL cannot be combined with CONFIG_FILE: put that route in the file",
      "STATIC_DIR cannot be combined with CONFIG_FILE: put that route in the file",
      "FRONTEND_URL cannot be combined with CONFIG_FILE: put that route in the file",
    ]],
  ])("and %s is an error", (_name, env, expected) => {
    const file = write("combined.json", JSON.stringify(routes(api())));
    expect(resolve({ CONFIG_FILE: file, ...env }).problems).toEqual(expected);
  });

  // The same table in each format; `static = "web"` is relative to the file's directory (conf/),
  // not to the working directory (dir), which has a web/ of its own.
  const TOML = `
[[routes]]
name = "api"
path = "/api/"
upstream = "http://localhost:8080"
timeout_ms = 5000
strip_prefix = true
[routes.allow]
emails = ["Ada@Example.com"]
email_domains = ["example.com"]
email_verified = true

[[routes]]
name = "app"
path = "/"
static = "web"
spa = true
auth = "none"
`;
  const YAML = `
routes:
  - name: api
    path: /api/
    upstream: http://localhost:8080
    timeout_ms: 5000
    strip_prefix: true
    allow:
      emails: [Ada@Example.com]
      email_domains:
        - example.com
      email_verified: true
  - name: app
    path: /
    static: web
    spa: true
    auth: none
`;
  const JSON_TEXT = JSON.stringify({
    routes: [
      { name: "api", path: "/api/", upstream: "http://localhost:8080", timeout_ms: 5000, strip_prefix: true, allow: { emails: ["Ada@Example.com"], email_domains: ["example.com"], email_verified: true } },
      { name: "app", path: "/", static: "web", spa: true, auth: "none" },
    ],
  }, null, 2);
  const expected = [
    {
      index: 0,
      name: "api",
      path: "/api",
      upstream: "http://localhost:8080/",
      ...UPSTREAM_DEFAULTS,
      timeoutMs: 5000,
      stripPrefix: true,
      allow: { emails: ["ada@example.com"], emailDomains: ["example.com"], roles: [], emailVerified: true, apiKeys: true },
    },
    { index: 1, name: "app", path: "/", auth: "none", allow: undefined, kind: "static", root: join(dir, "conf", "web"), spa: true },
  ];

  test.each<[string, string]>([
    ["authgate.toml", TOML],
    ["authgate.yaml", YAML],
    ["authgate.yml", YAML],
    ["authgate.json", JSON_TEXT],
    ["authgate.TOML", TOML],
    ["bom.json", `\uFEFF${JSON_TEXT}`],
  ])("%s", (name, text) => {
    writeFileSync(join(dir, "conf", name), text);
    const { routes: list, problems } = resolve({ CONFIG_FILE: `conf/${name}` });
    expect(problems).toEqual([]);
    expect(list).toEqual(expected);
  });

  test("an absolute CONFIG_FILE ignores the working directory", () => {
    writeFileSync(join(dir, "conf", "abs.toml"), TOML);
    expect(resolve({ CONFIG_FILE: join(dir, "conf", "abs.toml") }, "/").routes).toEqual(expected);
  });

  test.each<[string, string, string, string[]]>([
    ["an unknown extension", "authgate.ini", "", ["CONFIG_FILE: must end in .toml, .yaml, .yml or .json"]],
    ["no extension", "authgate", "", ["CONFIG_FILE: must end in .toml, .yaml, .yml or .json"]],
    ["invalid TOML", "bad.toml", '[[routes]]\nname = api\n', ['CONFIG_FILE: bad.toml is not valid TOML: Strings must be quoted: "api"']],
    ["TOML with [routes] after [[routes]]", "redefined.toml", '[[routes]]\nname = "a"\n[routes]\n', ["CONFIG_FILE: redefined.toml is not valid TOML: Cannot redefine array of tables 'routes' as a table"]],
    ["invalid YAML", "bad.yaml", "routes:\n  - name: [api\n", ["CONFIG_FILE: bad.yaml is not valid YAML: Unexpected token"]],
    ["invalid JSON", "bad.json", '{"routes": [}', ["CONFIG_FILE: bad.json is not valid JSON: Unexpected token '}'"]],
    ["an empty JSON file", "empty.json", "", ["CONFIG_FILE: empty.json is not valid JSON: Unexpected EOF"]],
    ["an empty TOML file", "empty.toml", "", ["routes: must be a non-empty array of tables ([[routes]] in TOML), got nothing"]],
    ["an empty YAML file", "empty.yaml", "", ['CONFIG_FILE: must be a table with a "routes" array, got null']],
    ["a YAML list at the top", "list.yaml", "- name: api\n", ['CONFIG_FILE: must be a table with a "routes" array, got an array']],
    ["[routes] instead of [[routes]]", "single.toml", '[routes]\nname = "api"\npath = "/api"\nupstream = "http://b"\n', ["routes: must be a non-empty array of tables ([[routes]] in TOML), got a table"]],
    // YAML reads these as strings; they are reported, not coerced.
    ["YAML strings where numbers and booleans belong", "types.yaml", 'routes:\n  - name: api\n    path: /api\n    upstream: http://b\n    timeout_ms: "30000"\n    strip_prefix: yes\n', [
      'routes[0].timeout_ms: must be a whole number from 1 to 3600000, got "30000"',
      'routes[0].strip_prefix: must be true or false, got "yes"',
    ]],
    ["a TOML integer beyond 2^53", "huge.toml", '[[routes]]\nname = "api"\npath = "/api"\nupstream = "http://b"\nmax_body_bytes = 9007199254740993\n', [
      "CONFIG_FILE: huge.toml is not valid TOML: Integer cannot be losslessly represented as a JavaScript number; it must be within +/-(2^53 - 1)",
    ]],
  ])("%s is reported", (_name, file, text, expected) => {
    if (text !== "" || file.startsWith("empty")) write(file, text);
    expect(resolve({ CONFIG_FILE: file }).problems).toEqual(expected);
  });

  test("an unreadable file is reported by its error code", () => {
    expect(resolve({ CONFIG_FILE: "./missing.toml" }).problems).toEqual(["CONFIG_FILE: cannot read ./missing.toml (ENOENT)"]);
    mkdirSync(join(dir, "a-directory.toml"), { recursive: true });
    expect(resolve({ CONFIG_FILE: "a-directory.toml" }).problems).toEqual(["CONFIG_FILE: cannot read a-directory.toml (EISDIR)"]);
  });

  test("readConfigFile returns the parsed document, or undefined after a problem", () => {
    const problems: string[] = [];
    expect(readConfigFile(join(dir, "conf", "authgate.json"), problems)).toEqual(JSON.parse(JSON_TEXT));
    expect(readConfigFile("nowhere.json", problems, dir)).toBeUndefined();
    expect(problems).toEqual(["CONFIG_FILE: cannot read nowhere.json (ENOENT)"]);
  });
});

describe("loadConfig carries the table", () => {
  test("without a config file: the api route, no configFile", () => {
    const config = loadConfig({ BACKEND_API_URL: "http://b:81/v1" }, dir);
    expect(config.configFile).toBeUndefined();
    expect(config.routes.map(plain)).toEqual([{ index: 0, name: "api", path: "/api", upstream: "http://b:81/v1", ...UPSTREAM_DEFAULTS }]);
    expect(Object.isFrozen(config.routes)).toBe(true);
  });

  test("with a config file: its absolute path, and routes defaulted from the environment", () => {
    const file = write("env-defaults.toml", '[[routes]]\nname = "api"\npath = "/api"\nupstream = "http://b"\n');
    const config = loadConfig({ CONFIG_FILE: file, PROXY_TIMEOUT_MS: "1500", MAX_BODY_BYTES: "0", BETTER_AUTH_URL: "https://auth.example.com" }, dir);
    expect(config.configFile).toBe(join(dir, file));
    expect(config.routes[0]).toMatchObject({ timeoutMs: 1500, maxBodyBytes: 0, audience: "https://auth.example.com" });
  });

  test("route problems and environment problems come in one ConfigError", () => {
    const file = write("mixed.json", JSON.stringify(routes(api({ auth: "requried" }))));
    let error: unknown;
    try {
      loadConfig({ CONFIG_FILE: file, PORT: "abc" }, dir);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      'PORT must be a whole number from 0 to 65535, got "abc"',
      'routes[0].auth: must be "required", "optional" or "none", got "requried"',
    ]);
  });
});

describe("reloadRoutes (SIGHUP)", () => {
  const first = '[[routes]]\nname = "api"\npath = "/api"\nupstream = "http://b"\n';

  test("a changed file gives the new table; the config keeps the old one", () => {
    const file = write("reload.toml", first);
    const config = loadConfig({ CONFIG_FILE: file, PROXY_TIMEOUT_MS: "2500" }, dir);
    write(file, `${first}\n[[routes]]\nname = "app"\npath = "/"\nstatic = "web"\nauth = "none"\n`);
    const reloaded = reloadRoutes(config);
    expect(reloaded.map((route) => [route.name, route.path, route.kind])).toEqual([
      ["api", "/api", "upstream"],
      ["app", "/", "static"],
    ]);
    // Start-up defaults still apply, and a relative static is still the file's directory's.
    expect(reloaded[0]).toMatchObject({ timeoutMs: 2500 });
    expect(reloaded[1]).toMatchObject({ root: join(dir, "web") });
    expect(config.routes).toHaveLength(1);
  });

  test("an invalid file throws a ConfigError with every problem", () => {
    const file = write("reload-bad.toml", first);
    const config = loadConfig({ CONFIG_FILE: file }, dir);
    write(file, '[[routes]]\nname = "api"\npath = "/healthz"\nupstream = "ftp://b"\nauth = "requried"\ntimeout = 5\n');
    expect(() => reloadRoutes(config)).toThrow(ConfigError);
    try {
      reloadRoutes(config);
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        'routes[0]: unknown key "timeout"',
        'routes[0].path: "/healthz" is reserved for the gateway',
        'routes[0].auth: must be "required", "optional" or "none", got "requried"',
        "routes[0].upstream: not an http(s) URL",
      ]);
    }
  });

  test("a file that went away is reported by its absolute path", () => {
    const file = write("reload-gone.toml", first);
    const config = loadConfig({ CONFIG_FILE: file }, dir);
    rmSync(join(dir, file));
    expect(() => reloadRoutes(config)).toThrow(`CONFIG_FILE: cannot read ${join(dir, file)} (ENOENT)`);
  });

  test("only the file is re-read: the environment passed in is not consulted again", () => {
    const file = write("reload-env.toml", first);
    const config = loadConfig({ CONFIG_FILE: file }, dir);
    expect(reloadRoutes(config).map((route) => route.name)).toEqual(["api"]);
  });

  test("without a config file there is nothing to re-read: the table stays", () => {
    const config = loadConfig({ BACKEND_API_URL: "http://b" }, dir);
    expect(reloadRoutes(config).map(plain)).toEqual(config.routes.map(plain));
  });
});

describe("describeRoutes", () => {
  const { routes: table } = parse(routes(
    api({ timeout_ms: 5000, strip_prefix: true, allow: { emails: ["ada@example.com"], email_domains: ["example.com"], email_verified: true } }),
    api({ name: "public", path: "/public", upstream: "https://pub.internal/v1", auth: "optional" }),
    app({ spa: true, auth: "none" }),
  ));

  test("one block per route: index, name, path, target, auth, non-default settings, allow", () => {
    expect(describeRoutes(table, DEFAULTS)).toBe(
      [
        "[0] api     /api     → http://localhost:8080/  auth = required",
        "    timeout_ms = 5000, strip_prefix = true",
        "    allow: emails ada@example.com or email_domains example.com, with a verified e-mail",
        "[1] public  /public  → https://pub.internal/v1  auth = optional",
        `[2] app     /        → static ${join(dir, "web")} (spa)  auth = none`,
        "",
      ].join("\n"),
    );
  });

  test("without defaults every upstream setting is shown", () => {
    const text = describeRoutes(table);
    expect(text).toContain(`    timeout_ms = 30000, max_body_bytes = ${GIB}, audience = "http://localhost:3000"`);
    for (const route of table) {
      expect(text).toContain(route.name);
      expect(text).toContain(route.path);
      expect(text).toContain(route.kind === "upstream" ? route.upstream.href : route.root);
    }
  });

  test("an allow rule of a verified e-mail alone", () => {
    const { routes: list } = parse(routes(api({ allow: { email_verified: true } })));
    expect(describeRoutes(list, DEFAULTS)).toContain("    allow: any signed-in user, with a verified e-mail");
  });

  test("an empty table", () => {
    expect(describeRoutes([])).toBe("(no routes)\n");
  });
});
