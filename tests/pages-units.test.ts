import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { callbackUrl, describeProviders } from "../src/auth/providers";
import { ConfigError, loadConfig, type Config } from "../src/config";
import { TEMPLATE_FILES } from "../src/pages/config";
import { errorMessage, noticeMessage } from "../src/pages/messages";
import { isNavigation } from "../src/pages/navigation";
import { safeRedirect } from "../src/pages/redirect";
import { deviceLabel, formToken, formTokenValid, themeStylesheet } from "../src/pages/respond";
import { loadTemplates } from "../src/pages/templates";

/**
 * The sign-in pages' pure parts, one table each: where a browser may be sent after signing in,
 * what counts as a navigation, the double-submit form token, the theme, the sessions list's
 * device labels, the messages, the configuration the pages add, and the templates.
 */

const dir = mkdtempSync(join(tmpdir(), "authgate-pages-units-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// safeRedirect

const ORIGIN = "http://app.test";

describe("safeRedirect keeps same-origin paths and sends everything else to /", () => {
  test.each<[string, string | null | undefined, string]>([
    ["the root", "/", "/"],
    ["a path with query and fragment", "/a?b=1#c", "/a?b=1#c"],
    ["a deep path", "/app/projects/42/settings", "/app/projects/42/settings"],
    ["null", null, "/"],
    ["undefined", undefined, "/"],
    ["empty", "", "/"],
    ["protocol-relative //host", "//evil.example", "/"],
    ["protocol-relative with a path", "//evil.example/a", "/"],
    ["/\\host (browsers read \\ as /)", "/\\evil.example", "/"],
    ["\\\\host", "\\\\evil", "/"],
    ["an absolute URL elsewhere", "https://evil.example/", "/"],
    // Absolute URLs are refused even on the own origin: only paths are accepted.
    ["an absolute URL on the own origin", "http://app.test/x", "/"],
    ["an encoded //, which stays a path", "/%2F%2Fevil", "/%2F%2Fevil"],
    ["a tab (browsers drop it: /\\t/evil is //evil)", "/\t/evil", "/"],
    ["a newline", "/x\n", "/"],
    ["a carriage return", "/x\r", "/"],
    ["a NUL", "/x\0", "/"],
    ["DEL", "/x\x7f", "/"],
    ["javascript:", "javascript:alert(1)", "/"],
    ["data:", "data:text/html,hi", "/"],
    ["a relative path without /", "dashboard", "/"],
    ["2048 characters: still accepted", `/${"a".repeat(2047)}`, `/${"a".repeat(2047)}`],
    ["over 2048 characters", `/${"a".repeat(2048)}`, "/"],
    ["dot segments are normalised, staying on the origin", "/ok/../../x", "/x"],
    ["a path with a colon", "/a:b", "/a:b"],
  ])("%s", (_name, raw, expected) => {
    expect(safeRedirect(raw, ORIGIN)).toBe(expected);
  });

  // The checks run on the raw value, but the answer is the *normalised* path, and dot segments
  // can normalise into "//host": `Location: //evil.example` would be an open redirect.
  test.each<[string, string]>([
    ["a dot segment before //", "/.//evil.example"],
    ["a dot-dot segment before //", "/x/..//evil.example"],
    ["an encoded dot segment before //", "/%2e//evil.example"],
    ["encoded dot-dot before //", "/%2E%2E//evil.example"],
  ])("%s → /", (_name, raw) => {
    expect(safeRedirect(raw, ORIGIN)).toBe("/");
  });
});

// ---------------------------------------------------------------------------------------------
// isNavigation

const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

describe("isNavigation: a GET or HEAD that prefers HTML", () => {
  test.each<[string, string, string | null, boolean]>([
    ["a browser's GET", "GET", BROWSER_ACCEPT, true],
    ["a browser's HEAD", "HEAD", BROWSER_ACCEPT, true],
    ["a POST that accepts HTML", "POST", BROWSER_ACCEPT, false],
    ["a DELETE that accepts HTML", "DELETE", "text/html", false],
    ["fetch()'s */*", "GET", "*/*", false],
    ["no Accept", "GET", null, false],
    ["an empty Accept", "GET", "", false],
    ["JSON only", "GET", "application/json", false],
    ["HTML at a lower quality than JSON", "GET", "text/html;q=0.5, application/json", false],
    ["JSON at a lower quality than HTML", "GET", "application/json;q=0.1, text/html", true],
    ["HTML alone", "GET", "text/html", true],
    ["HTML refused outright", "GET", "text/html;q=0, */*", false],
  ])("%s", (_name, method, accept, expected) => {
    expect(isNavigation(method, accept)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------
// formToken / formTokenValid

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;
const VALID = "A".repeat(21) + "b_-" + "9".repeat(19); // 43 characters of the alphabet
const OTHER_VALID = "Z".repeat(43);

describe("formToken: the double-submit token the page's forms carry", () => {
  test.each<[string, boolean, string]>([
    ["http", false, "authgate-csrf"],
    ["https", true, "__Host-authgate-csrf"],
  ])("without a cookie (%s): a new token, and a cookie that carries it", (_name, secure, cookieName) => {
    const { token, setCookie } = formToken(null, secure);
    expect(token).toMatch(TOKEN_SHAPE);
    expect(setCookie).toBeDefined();
    const [pair, ...attributes] = setCookie!.split(";").map((part) => part.trim());
    expect(pair).toBe(`${cookieName}=${token}`);
    expect(attributes).toContain("HttpOnly");
    expect(attributes).toContain("SameSite=Lax");
    expect(attributes).toContain("Path=/");
    if (secure) expect(attributes).toContain("Secure");
    else expect(attributes).not.toContain("Secure");
    expect(attributes.some((attribute) => /^Domain=/i.test(attribute))).toBe(false);
  });

  test("two fresh tokens differ", () => {
    expect(formToken(null, false).token).not.toBe(formToken(null, false).token);
  });

  test.each<[string, string, boolean, "reused" | "replaced"]>([
    ["a valid cookie is reused", `authgate-csrf=${VALID}`, false, "reused"],
    ["a valid cookie among others is reused", `a=1; authgate-csrf=${VALID}; b=2`, false, "reused"],
    ["a valid __Host- cookie on https is reused", `__Host-authgate-csrf=${VALID}`, true, "reused"],
    ["the http cookie is not the https one", `authgate-csrf=${VALID}`, true, "replaced"],
    ["the https cookie is not the http one", `__Host-authgate-csrf=${VALID}`, false, "replaced"],
    ["a malformed value (too short) is replaced", "authgate-csrf=short", false, "replaced"],
    ["a malformed value (bad characters) is replaced", `authgate-csrf=${"A".repeat(42)}%`, false, "replaced"],
    ["an empty value is replaced", "authgate-csrf=", false, "replaced"],
    ["a look-alike name is not the cookie", `xauthgate-csrf=${VALID}`, false, "replaced"],
  ])("%s", (_name, cookie, secure, outcome) => {
    const { token, setCookie } = formToken(cookie, secure);
    if (outcome === "reused") {
      expect(token).toBe(VALID);
      expect(setCookie).toBeUndefined();
    } else {
      expect(token).toMatch(TOKEN_SHAPE);
      expect(token).not.toBe(VALID);
      expect(setCookie).toStartWith(`${secure ? "__Host-" : ""}authgate-csrf=${token};`);
    }
  });
});

describe("formTokenValid: only the value the cookie holds", () => {
  test.each<[string, string | null, string | null, boolean, boolean]>([
    ["the cookie's value", `authgate-csrf=${VALID}`, VALID, false, true],
    ["the cookie's value, among other cookies", `x=1; authgate-csrf=${VALID}`, VALID, false, true],
    ["the __Host- cookie's value on https", `__Host-authgate-csrf=${VALID}`, VALID, true, true],
    ["another well-formed token", `authgate-csrf=${VALID}`, OTHER_VALID, false, false],
    ["one character off", `authgate-csrf=${VALID}`, `${VALID.slice(0, -1)}8`, false, false],
    ["a prefix of it (wrong length)", `authgate-csrf=${VALID}`, VALID.slice(0, 42), false, false],
    ["it with more (wrong length)", `authgate-csrf=${VALID}`, `${VALID}A`, false, false],
    ["empty", `authgate-csrf=${VALID}`, "", false, false],
    ["nothing sent", `authgate-csrf=${VALID}`, null, false, false],
    ["no cookie", null, VALID, false, false],
    ["no cookie header with the token, only other cookies", "a=1", VALID, false, false],
    ["a malformed cookie sent back as is", "authgate-csrf=short", "short", false, false],
    ["the http cookie on https", `authgate-csrf=${VALID}`, VALID, true, false],
    ["the https cookie on http", `__Host-authgate-csrf=${VALID}`, VALID, false, false],
  ])("%s → %p", (_name, cookie, sent, secure, expected) => {
    expect(formTokenValid(cookie, sent, secure)).toBe(expected);
  });

  test("a token formToken made is valid against the cookie it set", () => {
    const { token, setCookie } = formToken(null, false);
    const cookie = setCookie!.split(";")[0]!;
    expect(formTokenValid(cookie, token, false)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// themeStylesheet

describe("themeStylesheet: the brand colour and the text colour that reads on it", () => {
  test.each<[string, string, string, string]>([
    ["a dark brand gets white text", "#4f46e5", "#4f46e5", "#ffffff"],
    ["a light brand gets dark text", "#ffeb3b", "#ffeb3b", "#111111"],
    ["black gets white text", "#000000", "#000000", "#ffffff"],
    ["white gets dark text", "#ffffff", "#ffffff", "#111111"],
    ["#abc expands to #aabbcc", "#abc", "#aabbcc", "#111111"],
    ["#123 expands to #112233", "#123", "#112233", "#ffffff"],
  ])("%s", (_name, brand, expandedBrand, text) => {
    const css = themeStylesheet(brand);
    expect(css).toContain(`--brand: ${expandedBrand};`);
    expect(css).toContain(`--brand-text: ${text};`);
  });
});

// ---------------------------------------------------------------------------------------------
// deviceLabel

describe("deviceLabel: a short guess from the User-Agent", () => {
  test.each<[string, string | null | undefined, string]>([
    ["Chrome on Linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on Linux"],
    ["Firefox on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on Windows"],
    [
      "Safari on iOS",
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
      "Safari on iOS",
    ],
    [
      "Edge on Windows (its UA says Chrome and Safari too)",
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
      "Edge on Windows",
    ],
    ["Chrome on Android (its UA says Linux too)", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome on Android"],
    ["Safari on macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari on macOS"],
    ["an unknown client, as sent", "curl/8.5.0", "curl/8.5.0"],
    ["an unknown long client, cut at 60", `agent/${"x".repeat(100)}`, `agent/${"x".repeat(54)}`],
    ["null", null, "Unknown device"],
    ["undefined", undefined, "Unknown device"],
    ["empty", "", "Unknown device"],
  ])("%s", (_name, userAgent, expected) => {
    expect(deviceLabel(userAgent)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------
// messages

const GENERIC = "Something went wrong. Please try again.";

describe("errorMessage and noticeMessage", () => {
  test.each<[string, string | null | undefined, string | undefined]>([
    ["Better Auth's wrong password", "INVALID_EMAIL_OR_PASSWORD", "That e-mail and password do not match an account."],
    ["a provider's access_denied", "access_denied", "Sign-in was cancelled at the provider. Try again, or choose another way to sign in."],
    ["the pages' own FORM_EXPIRED", "FORM_EXPIRED", "This form has expired. Please try again."],
    ["a banned user (Better Auth's admin plugin)", "BANNED_USER", "This account is suspended. If you think that is a mistake, contact your administrator."],
    ["no code", null, undefined],
    ["an empty code", "", undefined],
    ["an unknown code", "NO_SUCH_CODE", GENERIC],
    ["text pretending to be a message", "Your account is locked, call +1 555 0100", GENERIC],
    ["markup", "<script>alert(1)</script>", GENERIC],
    ["a known code in the wrong case", "invalid_email_or_password", GENERIC],
  ])("errorMessage: %s", (_name, code, expected) => {
    const message = errorMessage(code);
    expect(message).toBe(expected as string);
    if (code && message) expect(message).not.toContain(code);
  });

  test.each<[string, string | null, string | undefined]>([
    ["signed-out", "signed-out", "You are signed out."],
    ["password-changed", "password-changed", "Your password was changed."],
    ["an unknown notice", "you-won", undefined],
    ["no notice", null, undefined],
  ])("noticeMessage: %s", (_name, code, expected) => {
    expect(noticeMessage(code)).toBe(expected as string);
  });

  // A code that names an Object.prototype member is not a message: `?error=toString` would
  // render "[object Object]", and `?notice=constructor` would run as a Mustache section lambda.
  test.each<[string]>([["constructor"], ["toString"], ["__proto__"], ["hasOwnProperty"], ["valueOf"]])(
    "errorMessage(%p) is the generic line",
    (code) => {
      expect(errorMessage(code)).toBe(GENERIC);
    },
  );
  test.each<[string]>([["constructor"], ["toString"], ["__proto__"]])("noticeMessage(%p) is undefined", (code) => {
    expect(noticeMessage(code)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// loadConfig: what the pages, mail and providers add

type Env = Record<string, string | undefined>;

const PRODUCTION: Env = { NODE_ENV: "production", BETTER_AUTH_SECRET: "s".repeat(32), BETTER_AUTH_URL: "https://gw.example" };
const SMTP: Env = { SMTP_URL: "smtp://mailer:pw@smtp.example:587", EMAIL_FROM: "App <no-reply@example.com>" };
const CORP: Env = {
  OIDC_PROVIDERS: "corp",
  OIDC_CORP_ISSUER: "https://sso.example.com",
  OIDC_CORP_CLIENT_ID: "client",
  OIDC_CORP_CLIENT_SECRET: "secret",
};

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const templateDir = join(dir, "templates-misspelt");
mkdirSync(templateDir);
writeFileSync(join(templateDir, "sigin.html"), "<p>oops</p>");
const goodTemplateDir = join(dir, "templates-good");
mkdirSync(goodTemplateDir);
writeFileSync(join(goodTemplateDir, "sign-in.html"), "<p>custom</p>");
const authRouteFile = write("auth-route.toml", `[[routes]]\nname = "legacy"\npath = "/auth"\nupstream = "http://localhost:8080"\n`);
const loginRouteFile = write("login-route.toml", `[[routes]]\nname = "login"\npath = "/login/x"\nupstream = "http://localhost:8080"\n`);

function load(env: Env): { config?: Config; problems: readonly string[] } {
  try {
    return { config: loadConfig(env, dir), problems: [] };
  } catch (error) {
    if (error instanceof ConfigError) return { problems: error.problems };
    throw error;
  }
}

interface ConfigRow {
  name: string;
  env: Env;
  /** Each must be part of some problem; none given: the config must load. */
  problems?: string[];
  check?: (config: Config) => void;
}

const CONFIG_ROWS: ConfigRow[] = [
  // The pages
  { name: "the pages are on at /auth by default", env: {}, check: (c) => expect(c.pages).toEqual({ path: "/auth" }) },
  { name: "PAGES=off: no pages", env: { PAGES: "off" }, check: (c) => expect(c.pages).toBeUndefined() },
  { name: "PAGES=false: no pages", env: { PAGES: "false" }, check: (c) => expect(c.pages).toBeUndefined() },
  { name: "PAGES=ON (any case) is on", env: { PAGES: "ON" }, check: (c) => expect(c.pages?.path).toBe("/auth") },
  { name: "PAGES=maybe", env: { PAGES: "maybe" }, problems: ['PAGES must be "on" or "off", got "maybe"'] },
  { name: 'PAGES_PATH "/login"', env: { PAGES_PATH: "/login" }, check: (c) => expect(c.pages?.path).toBe("/login") },
  { name: 'PAGES_PATH "/login/" loses its slash', env: { PAGES_PATH: "/login/" }, check: (c) => expect(c.pages?.path).toBe("/login") },
  { name: 'PAGES_PATH "/account/sign-in" (two segments)', env: { PAGES_PATH: "/account/sign-in" }, check: (c) => expect(c.pages?.path).toBe("/account/sign-in") },
  { name: 'PAGES_PATH under Better Auth\'s "/api/auth"', env: { PAGES_PATH: "/api/auth/x" }, problems: ['PAGES_PATH must not overlap the gateway\'s own "/api/auth"'] },
  { name: 'PAGES_PATH "/api" (above "/api/auth")', env: { PAGES_PATH: "/api" }, problems: ['PAGES_PATH must not overlap the gateway\'s own "/api/auth"'] },
  { name: 'PAGES_PATH "/healthz"', env: { PAGES_PATH: "/healthz" }, problems: ['PAGES_PATH must not overlap the gateway\'s own "/healthz"'] },
  { name: 'PAGES_PATH "/metrics/x"', env: { PAGES_PATH: "/metrics/x" }, problems: ['PAGES_PATH must not overlap the gateway\'s own "/metrics"'] },
  { name: 'PAGES_PATH "/swagger-x"', env: { PAGES_PATH: "/swagger-x" }, problems: ["PAGES_PATH must not overlap the gateway's own", '"/swagger-x"'] },
  { name: 'PAGES_PATH "auth" (no leading slash)', env: { PAGES_PATH: "auth" }, problems: ['PAGES_PATH must be a path such as "/auth"', 'got "auth"'] },
  { name: 'PAGES_PATH "/Auth" (capitals)', env: { PAGES_PATH: "/Auth" }, problems: ['PAGES_PATH must be a path such as "/auth"', 'got "/Auth"'] },
  { name: 'PAGES_PATH "/" (the whole site)', env: { PAGES_PATH: "/" }, problems: ['PAGES_PATH must be a path such as "/auth"'] },
  { name: 'PAGES_PATH "/a//b"', env: { PAGES_PATH: "/a//b" }, problems: ['PAGES_PATH must be a path such as "/auth"'] },
  { name: 'PAGES_PATH "/a/../b"', env: { PAGES_PATH: "/a/../b" }, problems: ['PAGES_PATH must be a path such as "/auth"'] },

  // The theme
  { name: "BRAND_COLOR default", env: {}, check: (c) => expect(c.theme.brandColor).toBe("#4f46e5") },
  { name: 'BRAND_COLOR "#ABCDEF" is lower-cased', env: { BRAND_COLOR: "#ABCDEF" }, check: (c) => expect(c.theme.brandColor).toBe("#abcdef") },
  { name: 'BRAND_COLOR "#abc"', env: { BRAND_COLOR: "#abc" }, check: (c) => expect(c.theme.brandColor).toBe("#abc") },
  { name: 'BRAND_COLOR "red"', env: { BRAND_COLOR: "red" }, problems: ['BRAND_COLOR must be a hex colour such as "#4f46e5", got "red"'] },
  { name: 'BRAND_COLOR "#12345"', env: { BRAND_COLOR: "#12345" }, problems: ['BRAND_COLOR must be a hex colour such as "#4f46e5", got "#12345"'] },
  { name: 'BRAND_COLOR "#123456;}" (would end the CSS rule)', env: { BRAND_COLOR: "#123456;}" }, problems: ["BRAND_COLOR must be a hex colour"] },
  { name: 'APP_LOGO_URL "/logo.svg"', env: { APP_LOGO_URL: "/logo.svg" }, check: (c) => expect(c.theme.logoUrl).toBe("/logo.svg") },
  { name: "APP_LOGO_URL on the gateway's own origin, absolute, becomes a path", env: { APP_LOGO_URL: "http://localhost:3000/img/logo.png" }, check: (c) => expect(c.theme.logoUrl).toBe("/img/logo.png") },
  { name: "APP_LOGO_URL elsewhere", env: { APP_LOGO_URL: "https://cdn.example/logo.png" }, problems: ["APP_LOGO_URL must be on the gateway's own origin", 'got "https://cdn.example/logo.png"'] },
  { name: "APP_LOGO_URL protocol-relative", env: { APP_LOGO_URL: "//cdn.example/x" }, problems: ["APP_LOGO_URL must be on the gateway's own origin"] },
  { name: "APP_LOGO_URL with a backslash", env: { APP_LOGO_URL: "/\\cdn.example/x" }, problems: ["APP_LOGO_URL must be on the gateway's own origin"] },
  { name: "APP_NAME over 80 characters", env: { APP_NAME: "n".repeat(81) }, problems: ["APP_NAME must be at most 80 characters, got 81"] },
  {
    name: "PAGES_TEMPLATE_DIR with a misspelt file name",
    env: { PAGES_TEMPLATE_DIR: templateDir },
    problems: ['PAGES_TEMPLATE_DIR holds "sigin.html", which no template is named: expected any of', "sign-in.html", "email-reset-password.txt"],
  },
  { name: "PAGES_TEMPLATE_DIR that is not a directory", env: { PAGES_TEMPLATE_DIR: "no-such-dir" }, problems: ['PAGES_TEMPLATE_DIR must be a directory, got "no-such-dir"'] },
  { name: "PAGES_TEMPLATE_DIR, relative, resolved against cwd", env: { PAGES_TEMPLATE_DIR: "templates-good" }, check: (c) => expect(c.theme.templateDir).toBe(goodTemplateDir) },

  // Mail
  { name: "no SMTP_URL in development: mail goes to the log", env: {}, check: (c) => expect(c.email).toMatchObject({ delivery: "log", smtpUrl: undefined }) },
  { name: "no SMTP_URL in production: no mail", env: PRODUCTION, check: (c) => expect(c.email).toMatchObject({ delivery: "none", smtpUrl: undefined }) },
  { name: "SMTP_URL: smtp", env: SMTP, check: (c) => expect(c.email).toMatchObject({ delivery: "smtp", smtpUrl: SMTP.SMTP_URL, from: SMTP.EMAIL_FROM }) },
  { name: "SMTP_URL in production: smtp", env: { ...PRODUCTION, ...SMTP }, check: (c) => expect(c.email.delivery).toBe("smtp") },
  { name: 'SMTP_URL "http://x"', env: { SMTP_URL: "http://x", EMAIL_FROM: "a@b.example" }, problems: ["SMTP_URL must be smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (TLS)"] },
  { name: "SMTP_URL that does not parse", env: { SMTP_URL: "smtp://u:hunter2secret@:bad", EMAIL_FROM: "a@b.example" }, problems: ["SMTP_URL must be smtp://"] },
  { name: "SMTP_URL without EMAIL_FROM", env: { SMTP_URL: "smtp://u:p@smtp.example:587" }, problems: ["EMAIL_FROM is required with SMTP_URL"] },
  { name: "EMAIL_FROM that is no address", env: { ...SMTP, EMAIL_FROM: "nobody" }, problems: ['EMAIL_FROM must be an address or "Name <address>", got "nobody"'] },
  { name: "REQUIRE_EMAIL_VERIFICATION=true in development (mail to the log)", env: { REQUIRE_EMAIL_VERIFICATION: "true" }, check: (c) => expect(c.email.requireVerification).toBe(true) },
  {
    name: "REQUIRE_EMAIL_VERIFICATION=true in production without SMTP_URL",
    env: { ...PRODUCTION, REQUIRE_EMAIL_VERIFICATION: "true" },
    problems: ["REQUIRE_EMAIL_VERIFICATION=true needs SMTP_URL when NODE_ENV=production"],
  },
  { name: "REQUIRE_EMAIL_VERIFICATION=true in production with SMTP_URL", env: { ...PRODUCTION, ...SMTP, REQUIRE_EMAIL_VERIFICATION: "true" }, check: (c) => expect(c.email.requireVerification).toBe(true) },
  { name: "REQUIRE_EMAIL_VERIFICATION=sometimes", env: { REQUIRE_EMAIL_VERIFICATION: "sometimes" }, problems: ['REQUIRE_EMAIL_VERIFICATION must be "true" or "false", got "sometimes"'] },
  { name: "SMTP_TIMEOUT_MS over the worker's deadline", env: { SMTP_TIMEOUT_MS: "15000" }, problems: ["SMTP_TIMEOUT_MS must be a whole number from 100 to 12000"] },

  // Providers
  {
    name: "GitHub with id and secret",
    env: { GITHUB_CLIENT_ID: "gh-id", GITHUB_CLIENT_SECRET: "gh-secret" },
    check: (c) => expect(c.providers).toEqual([{ id: "github", kind: "github", name: "GitHub", clientId: "gh-id", clientSecret: "gh-secret", scopes: [] }]),
  },
  { name: "GITHUB_CLIENT_ID without its secret", env: { GITHUB_CLIENT_ID: "gh-id" }, problems: ["GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET must be set together (GitHub sign-in)"] },
  { name: "GOOGLE_CLIENT_SECRET without its id", env: { GOOGLE_CLIENT_SECRET: "g" }, problems: ["GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET must be set together (Google sign-in)"] },
  {
    name: "an OIDC provider with every variable",
    env: CORP,
    check: (c) =>
      expect(c.providers).toEqual([
        { id: "corp", kind: "oidc", name: "corp", clientId: "client", clientSecret: "secret", issuer: "https://sso.example.com", scopes: ["openid", "email", "profile"] },
      ]),
  },
  { name: "OIDC_CORP_NAME is the button's label", env: { ...CORP, OIDC_CORP_NAME: "Corporate SSO" }, check: (c) => expect(c.providers[0]!.name).toBe("Corporate SSO") },
  { name: "an OIDC issuer's trailing slash is dropped", env: { ...CORP, OIDC_CORP_ISSUER: "https://sso.example.com/realms/x/" }, check: (c) => expect(c.providers[0]!.issuer).toBe("https://sso.example.com/realms/x") },
  {
    name: "OIDC_PROVIDERS=corp without OIDC_CORP_ISSUER",
    env: { ...CORP, OIDC_CORP_ISSUER: undefined },
    problems: ['OIDC_PROVIDERS lists "corp": set OIDC_CORP_ISSUER'],
  },
  {
    name: "OIDC_PROVIDERS=corp with nothing else",
    env: { OIDC_PROVIDERS: "corp" },
    problems: ['OIDC_PROVIDERS lists "corp": set OIDC_CORP_ISSUER, OIDC_CORP_CLIENT_ID, OIDC_CORP_CLIENT_SECRET'],
  },
  { name: "an http issuer off this machine", env: { ...CORP, OIDC_CORP_ISSUER: "http://sso.example.com" }, problems: ["OIDC_CORP_ISSUER must be an https:// URL (http:// only on this machine)"] },
  { name: "an http issuer on 127.0.0.1", env: { ...CORP, OIDC_CORP_ISSUER: "http://127.0.0.1:9000" }, check: (c) => expect(c.providers[0]!.issuer).toBe("http://127.0.0.1:9000") },
  { name: "an http issuer on localhost", env: { ...CORP, OIDC_CORP_ISSUER: "http://localhost:9000" }, check: (c) => expect(c.providers[0]!.issuer).toBe("http://localhost:9000") },
  { name: "an issuer with credentials", env: { ...CORP, OIDC_CORP_ISSUER: "https://u:p@sso.example.com" }, problems: ["OIDC_CORP_ISSUER must be the issuer URL alone (no credentials, query or fragment)"] },
  { name: "an issuer that is no URL", env: { ...CORP, OIDC_CORP_ISSUER: "sso.example.com" }, problems: ['OIDC_CORP_ISSUER must be an https:// URL, got "sso.example.com"'] },
  { name: 'OIDC id "Bad-Id"', env: { OIDC_PROVIDERS: "Bad-Id" }, problems: ['OIDC_PROVIDERS: "bad-id" must be 1 to 32 letters, digits or "_", starting with a letter'] },
  { name: 'OIDC id "1corp"', env: { OIDC_PROVIDERS: "1corp" }, problems: ['OIDC_PROVIDERS: "1corp" must be 1 to 32 letters'] },
  { name: 'OIDC id "github" (a built-in provider\'s)', env: { GITHUB_CLIENT_ID: "a", GITHUB_CLIENT_SECRET: "b", OIDC_PROVIDERS: "github" }, problems: ['OIDC_PROVIDERS: "github" is listed twice or is a built-in provider\'s id'] },
  { name: "an OIDC id listed twice", env: { ...CORP, OIDC_PROVIDERS: "corp,corp" }, problems: ['OIDC_PROVIDERS: "corp" is listed twice'] },
  { name: 'OIDC_CORP_SCOPES "email profile" (no openid)', env: { ...CORP, OIDC_CORP_SCOPES: "email profile" }, problems: ['OIDC_CORP_SCOPES must include "openid", got "email profile"'] },
  { name: 'OIDC_CORP_SCOPES "openid,email"', env: { ...CORP, OIDC_CORP_SCOPES: "openid,email" }, check: (c) => expect(c.providers[0]!.scopes).toEqual(["openid", "email"]) },
  { name: 'OIDC_CORP_SCOPES "openid, email  groups"', env: { ...CORP, OIDC_CORP_SCOPES: "openid, email  groups" }, check: (c) => expect(c.providers[0]!.scopes).toEqual(["openid", "email", "groups"]) },

  // Routes against PAGES_PATH
  { name: "a CONFIG_FILE route at /auth", env: { CONFIG_FILE: authRouteFile }, problems: ['routes[0].path: "/auth" is reserved for the gateway', "PAGES_PATH"] },
  { name: "the same route with PAGES=off", env: { CONFIG_FILE: authRouteFile, PAGES: "off" }, check: (c) => expect(c.routes.map((route) => route.path)).toEqual(["/auth"]) },
  { name: "the same route with PAGES_PATH elsewhere", env: { CONFIG_FILE: authRouteFile, PAGES_PATH: "/login" }, check: (c) => expect(c.routes.map((route) => route.path)).toEqual(["/auth"]) },
  { name: "a route under PAGES_PATH", env: { CONFIG_FILE: loginRouteFile, PAGES_PATH: "/login" }, problems: ['routes[0].path: "/login/x" is reserved for the gateway (under "/login")', "PAGES_PATH"] },
];

describe("loadConfig: the pages, mail and providers", () => {
  test.each(CONFIG_ROWS.map((row) => [row.name, row] as const))("%s", (_name, row) => {
    const { config, problems } = load(row.env);
    if (row.problems) {
      expect(config).toBeUndefined();
      for (const expected of row.problems) expect(problems.some((problem) => problem.includes(expected))).toBe(true);
    } else {
      expect(problems).toEqual([]);
      row.check?.(config!);
    }
  });

  test.each<[string, Env]>([
    ["an unparseable SMTP_URL", { SMTP_URL: "smtp://u:hunter2secret@:bad", EMAIL_FROM: "a@b.example" }],
    ["an SMTP_URL of the wrong scheme", { SMTP_URL: "http://u:hunter2secret@smtp.example" }],
    ["an SMTP_URL without EMAIL_FROM", { SMTP_URL: "smtp://u:hunter2secret@smtp.example:587" }],
    ["an SMTP_URL with a bad EMAIL_FROM", { SMTP_URL: "smtp://u:hunter2secret@smtp.example:587", EMAIL_FROM: "x" }],
  ])("no problem ever shows the SMTP password: %s", (_name, env) => {
    let error: unknown;
    try {
      loadConfig(env, dir);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message } = error as ConfigError;
    expect(problems.length).toBeGreaterThan(0);
    expect(message).not.toContain("hunter2secret");
    for (const problem of problems) expect(problem).not.toContain("hunter2secret");
  });

  test("production needs the secret and https: the rows above use a valid production base", () => {
    expect(load(PRODUCTION).problems).toEqual([]);
    expect(load({ ...PRODUCTION, BETTER_AUTH_SECRET: "short" }).problems).toEqual([
      "BETTER_AUTH_SECRET must be at least 32 characters when NODE_ENV=production, got 5",
    ]);
  });
});

describe("callbackUrl and describeProviders", () => {
  const providers = loadConfig({ GITHUB_CLIENT_ID: "a", GITHUB_CLIENT_SECRET: "b", GOOGLE_CLIENT_ID: "c", GOOGLE_CLIENT_SECRET: "d", ...CORP }, dir).providers;
  test.each<[string, string]>([
    ["github", "https://gw.example/api/auth/callback/github"],
    ["google", "https://gw.example/api/auth/callback/google"],
    // Better Auth 1.7 registers OpenID providers as social ones: the same callback path.
    ["corp", "https://gw.example/api/auth/callback/corp"],
  ])("%s → %s", (id, expected) => {
    expect(callbackUrl(providers.find((provider) => provider.id === id)!, "https://gw.example")).toBe(expected);
  });

  test("describeProviders: one line per provider with its callback, nothing without providers", () => {
    const text = describeProviders(providers, "https://gw.example");
    expect(text.split("\n").filter((line) => line.includes("/api/auth/"))).toEqual([
      "  github  https://gw.example/api/auth/callback/github",
      "  google  https://gw.example/api/auth/callback/google",
      "  corp    https://gw.example/api/auth/callback/corp",
    ]);
    expect(text).not.toContain("secret");
    expect(describeProviders([], "https://gw.example")).toBe("");
  });
});

// ---------------------------------------------------------------------------------------------
// loadTemplates

describe("loadTemplates", () => {
  const builtIn = loadTemplates(undefined);

  test("every template file has a built-in template", () => {
    for (const name of TEMPLATE_FILES) expect(builtIn[name].length).toBeGreaterThan(0);
  });

  test("a file in the directory replaces its template, and only that one", () => {
    const overridden = loadTemplates(goodTemplateDir);
    expect(overridden["sign-in.html"]).toBe("<p>custom</p>");
    for (const name of TEMPLATE_FILES) if (name !== "sign-in.html") expect(overridden[name]).toBe(builtIn[name]);
  });

  test.each<[string, string, string]>([
    ["an unclosed section", "account.html", "{{#open}}"],
    ["a section closed by another name", "sign-in.html", "{{#a}}x{{/b}}"],
    ["an unclosed tag in the layout", "layout.html", "<p>{{title</p>"],
    ["an unclosed section in a mail", "email-verification.txt", "Hello {{#name}}"],
  ])("%s stops the load, naming the file", (_name, file, text) => {
    const broken = join(dir, `broken-${file}`);
    mkdirSync(broken, { recursive: true });
    writeFileSync(join(broken, file), text);
    expect(() => loadTemplates(broken)).toThrow(`PAGES_TEMPLATE_DIR: ${file}:`);
  });

  test("style.css is not parsed as a template (CSS may hold {{ )", () => {
    const css = join(dir, "css-only");
    mkdirSync(css, { recursive: true });
    writeFileSync(join(css, "style.css"), "a::after { content: '{{#'; }");
    expect(loadTemplates(css)["style.css"]).toBe("a::after { content: '{{#'; }");
  });
});
