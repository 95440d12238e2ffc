import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PAGE_HEADERS } from "../src/pages/respond";
import { startBackend, type TestBackend } from "./helpers/backend";
import { freePort, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";

/**
 * The sign-in pages over HTTP, without a browser: a real gateway on a loopback port, a real
 * recording backend that verifies its JWTs, and a small cookie jar standing in for the browser
 * (plain fetch, `redirect: "manual"`). What is checked: every page's security headers, a
 * navigation's redirect to sign-in versus an API call's JSON, the form posts and their token,
 * the account page's sessions and password, and the limits in front of Better Auth.
 */

const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
const PASSWORD = "correct horse battery";
const SESSION_COOKIE = "better-auth.session_token";

/** The page's hidden form token. */
function csrfOf(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error(`no csrf input in:\n${html.slice(0, 500)}`);
  return match[1]!;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/**
 * A page's HTML with character references decoded, as a browser reads attribute values and
 * text: Mustache writes "/" as "&#x2F;" and "=" as "&#x3D;".
 */
function decodeHtml(html: string): string {
  return html.replace(/&(?:#x([0-9a-f]+)|#(\d+)|([a-z]+));/gi, (whole, hex, decimal, name) =>
    hex ? String.fromCodePoint(parseInt(hex, 16)) : decimal ? String.fromCodePoint(Number(decimal)) : (ENTITIES[name.toLowerCase()] ?? whole),
  );
}

async function htmlOf(response: Response): Promise<string> {
  return decodeHtml(await response.text());
}

/** Just the cookies a browser would store from a response, name → value (deleted ones as ""). */
function setCookies(response: Response): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(";");
    const at = pair!.indexOf("=");
    const name = pair!.slice(0, at).trim();
    const expired = attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute));
    cookies.set(name, expired ? "" : pair!.slice(at + 1).trim());
  }
  return cookies;
}

/** A browser's cookie jar over plain fetch: cookies kept, redirects not followed. */
class Browser {
  readonly cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
  }

  /** The session token (before its signature), as a page must never show it. */
  sessionToken(): string | undefined {
    const value = this.cookies.get(SESSION_COOKIE);
    return value ? decodeURIComponent(value).split(".")[0] : undefined;
  }

  async request(method: string, path: string, init: { headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0 && !headers.has("cookie")) headers.set("cookie", this.cookieHeader());
    const response = await fetch(`${this.base}${path}`, { method, headers, body: init.body, redirect: "manual" });
    for (const [name, value] of setCookies(response)) {
      if (value) this.cookies.set(name, value);
      else this.cookies.delete(name);
    }
    return response;
  }

  /** A page as a browser navigates to it. */
  get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.request("GET", path, { headers: { accept: BROWSER_ACCEPT, ...headers } });
  }

  /** The page at `page`, and its form token. */
  async open(page: string): Promise<{ html: string; csrf: string }> {
    const response = await this.get(page);
    const html = await htmlOf(response);
    if (response.status !== 200) throw new Error(`${page}: ${response.status} ${html.slice(0, 300)}`);
    return { html, csrf: csrfOf(html) };
  }

  /** A form post as a browser sends it from one of the pages. */
  post(path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    return this.request("POST", path, {
      headers: { accept: BROWSER_ACCEPT, "content-type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /** A fetch() from the app: */
  api(path: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    return this.request(init.method ?? "GET", path, { headers: { accept: "*/*", ...init.headers } });
  }
}

let backend: TestBackend;
let gw: RunningGateway;
let off: RunningGateway;
const dir = tempDir();
const BOSS = "boss@example.test";

const newEmail = () => `user-${crypto.randomUUID()}@example.test`;

/** Signs up through the sign-up page's form: a browser with its session. */
async function signedUp(email = newEmail()): Promise<{ browser: Browser; email: string }> {
  const browser = new Browser(gw.url);
  const { csrf } = await browser.open("/auth/sign-up");
  const response = await browser.post("/auth/sign-up", { csrf, name: "Page User", email, password: PASSWORD, redirect: "/" });
  if (response.status !== 303 || !browser.sessionToken()) throw new Error(`sign-up: ${response.status} ${await htmlOf(response)}`);
  return { browser, email };
}

/** Signs an existing user in through the sign-in page, in a new browser. */
async function signedIn(email: string, password = PASSWORD): Promise<Browser> {
  const browser = new Browser(gw.url);
  const { csrf } = await browser.open("/auth/sign-in");
  const response = await browser.post("/auth/sign-in", { csrf, email, password, redirect: "/" });
  if (response.status !== 303 || !browser.sessionToken()) throw new Error(`sign-in: ${response.status} ${await htmlOf(response)}`);
  return browser;
}

async function sessionCount(email: string): Promise<number> {
  const user = await gw.db.kysely.selectFrom("user").select("id").where("email", "=", email).executeTakeFirst();
  if (!user) return 0;
  const rows = await gw.db.kysely.selectFrom("session").select("id").where("userId", "=", user.id).execute();
  return rows.length;
}

beforeAll(async () => {
  backend = startBackend();
  const file = join(dir.path, "authgate.toml");
  writeFileSync(
    file,
    `[[routes]]
name = "api"
path = "/api"
upstream = "${backend.url}"

[[routes]]
name = "admin"
path = "/api/admin"
upstream = "${backend.url}"
# Accounts signed up here are not verified (email_verified would be required by default).
allow = { emails = ["${BOSS}"], email_verified = false }
`,
  );
  gw = await startGateway(
    {
      CONFIG_FILE: file,
      // An OpenID provider nobody listens for: the button renders, starting it fails.
      OIDC_PROVIDERS: "corp",
      OIDC_CORP_ISSUER: `http://127.0.0.1:${freePort()}`,
      OIDC_CORP_CLIENT_ID: "client",
      OIDC_CORP_CLIENT_SECRET: "secret",
      OIDC_CORP_NAME: "Corp SSO",
    },
    dir.path,
  );
  backend.trustGateway(gw.url, gw.url);
  const offDir = join(dir.path, "off");
  mkdirSync(offDir);
  off = await startGateway({ PAGES: "off", BACKEND_API_URL: backend.url }, offDir);
});

afterAll(async () => {
  await gw?.stop();
  await off?.stop();
  await backend?.stop();
  dir.remove();
});

// ---------------------------------------------------------------------------------------------

describe("every page carries the security headers and loads nothing from another origin", () => {
  /** Attribute values that load or link something: each must be a path on the gateway. */
  const urlAttributes = (html: string) => [...html.matchAll(/\s(?:src|href|action|formaction|srcset|poster|data)\s*=\s*"([^"]*)"/gi)].map((m) => m[1]!);

  const rows: { name: string; status: number; open(): Promise<Response> }[] = [
    { name: "sign-in", status: 200, open: () => new Browser(gw.url).get("/auth/sign-in") },
    { name: "sign-in with an error", status: 200, open: () => new Browser(gw.url).get("/auth/sign-in?error=INVALID_TOKEN") },
    { name: "sign-up", status: 200, open: () => new Browser(gw.url).get("/auth/sign-up") },
    { name: "forgot-password", status: 200, open: () => new Browser(gw.url).get("/auth/forgot-password") },
    { name: "reset-password", status: 200, open: () => new Browser(gw.url).get("/auth/reset-password?token=x") },
    { name: "verify-email", status: 200, open: () => new Browser(gw.url).get("/auth/verify-email") },
    { name: "verify-email with a bad token", status: 401, open: () => new Browser(gw.url).get("/auth/verify-email?token=not-a-token") },
    { name: "account (signed in)", status: 200, open: async () => (await signedUp()).browser.get("/auth/account") },
    { name: "the 404 page", status: 404, open: () => new Browser(gw.url).get("/auth/nope") },
    { name: "the 403 page", status: 403, open: async () => (await signedUp()).browser.get("/api/admin/report") },
  ];

  test.each(rows.map((row) => [row.name, row] as const))("%s", async (_name, row) => {
    const response = await row.open();
    const html = await htmlOf(response);
    expect(response.status).toBe(row.status);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("content-security-policy")).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    for (const [name, value] of Object.entries(PAGE_HEADERS)) expect(response.headers.get(name)).toBe(value);

    expect(html).toStartWith("<!doctype html>");
    const urls = urlAttributes(html);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) {
      expect(url).toStartWith("/");
      expect(url).not.toStartWith("//");
      expect(url).not.toContain("\\");
    }
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/url\(/i);
    expect(html).not.toMatch(/<(script|style)>/i); // no inline script or style (the CSP would block it)
  });

  test("the assets the pages load are served by the gateway", async () => {
    for (const [path, type] of [
      ["/auth/assets/style.css", "text/css; charset=utf-8"],
      ["/auth/assets/theme.css", "text/css; charset=utf-8"],
      ["/auth/assets/pages.js", "text/javascript; charset=utf-8"],
    ] as const) {
      const response = await fetch(`${gw.url}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe(type);
      expect(response.headers.get("x-content-type-options")).toBe("nosniff");
      expect((await response.text()).length).toBeGreaterThan(0); // raw asset
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("a refused navigation gets a page, an API call keeps its JSON", () => {
  test.each<[string, string, string, number, string | null]>([
    ["a browser's GET without a session", "GET", BROWSER_ACCEPT, 302, "/auth/sign-in?redirect=%2Fapi%2Fx%3Fa%3D1"],
    ["a browser's HEAD without a session", "HEAD", BROWSER_ACCEPT, 302, "/auth/sign-in?redirect=%2Fapi%2Fx%3Fa%3D1"],
    ["fetch() (*/*) without a session", "GET", "*/*", 401, null],
    ["a JSON client without a session", "GET", "application/json", 401, null],
    ["a form POST that accepts HTML", "POST", BROWSER_ACCEPT, 401, null],
  ])("%s", async (_name, method, accept, status, location) => {
    const before = backend.received.length;
    const response = await fetch(`${gw.url}/api/x?a=1`, { method, headers: { accept }, redirect: "manual" });
    expect(response.status).toBe(status);
    expect(response.headers.get("location")).toBe(location);
    if (status === 401) {
      expect(response.headers.get("content-type")).toStartWith("application/json");
      const body = (await response.json()) as { error: unknown };
      expect(typeof body.error).toBe("string");
    }
    expect(backend.received.length).toBe(before);
  });

  test("the sign-in page it redirects to keeps the way back in its form", async () => {
    const response = await new Browser(gw.url).get("/auth/sign-in?redirect=%2Fapi%2Fx%3Fa%3D1");
    const html = await htmlOf(response);
    expect(html).toContain('name="redirect" value="/api/x?a=1"');
    expect(html).toContain('href="/auth/sign-up?redirect=%2Fapi%2Fx%3Fa%3D1"');
  });

  test("signed in but not allowed: a readable 403 page for a navigation, JSON for fetch", async () => {
    const { browser, email } = await signedUp();
    const before = backend.received.length;

    const page = await browser.get("/api/admin/report");
    const html = await htmlOf(page);
    expect(page.status).toBe(403);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(html).toContain("No access");
    expect(html).toContain(`<strong>${email}</strong>`);
    // The sign-out form on it carries a token that matches the browser's cookie.
    expect(csrfOf(html)).toBe(browser.cookies.get("authgate-csrf")!);

    const api = await browser.api("/api/admin/report");
    expect(api.status).toBe(403);
    expect(api.headers.get("content-type")).toStartWith("application/json");
    expect(typeof ((await api.json()) as { error: unknown }).error).toBe("string");

    expect(backend.received.length).toBe(before);
  });

  test("the allowed user reaches the same route", async () => {
    const { browser } = await signedUp(BOSS);
    const response = await browser.get("/api/admin/report");
    expect(response.status).toBe(200);
    expect(backend.received.at(-1)!.claims?.email).toBe(BOSS);
  });

  test("with PAGES=off a navigation gets 401 JSON and there is no sign-in page", async () => {
    const refused = await fetch(`${off.url}/api/x?a=1`, { headers: { accept: BROWSER_ACCEPT }, redirect: "manual" });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("content-type")).toStartWith("application/json");
    expect(typeof ((await refused.json()) as { error: unknown }).error).toBe("string");

    const page = await fetch(`${off.url}/auth/sign-in`, { headers: { accept: BROWSER_ACCEPT }, redirect: "manual" });
    expect(page.status).toBe(404);
    expect(page.headers.get("content-type")).toStartWith("application/json");
    expect(await page.json()).toEqual({ error: "Not found" });
  });
});

// ---------------------------------------------------------------------------------------------

describe("the forms, posted without a browser", () => {
  test("sign-up: the page's token and cookie, a 303 to the target, a session the backend sees", async () => {
    const browser = new Browser(gw.url);
    const page = await browser.get("/auth/sign-up?redirect=%2Fafter");
    const html = await htmlOf(page);
    expect(page.status).toBe(200);
    const cookie = setCookies(page).get("authgate-csrf");
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(csrfOf(html)).toBe(cookie!);
    expect(html).toContain('name="redirect" value="/after"');

    const email = newEmail();
    const response = await browser.post("/auth/sign-up", { csrf: csrfOf(html), name: "Form User", email, password: PASSWORD, redirect: "/after" });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/after");
    expect(setCookies(response).get(SESSION_COOKIE)).toBeTruthy();

    const me = await browser.api("/api/me");
    expect(me.status).toBe(200);
    const seen = backend.received.at(-1)!;
    expect(seen.target).toBe("/api/me");
    expect(seen.jwtError).toBeUndefined();
    expect(seen.claims?.email).toBe(email);
    expect(seen.claims?.name).toBe("Form User");
  });

  test("a second page view reuses the form token", async () => {
    const browser = new Browser(gw.url);
    const first = await browser.open("/auth/sign-in");
    const second = await browser.get("/auth/sign-up");
    expect(setCookies(second).has("authgate-csrf")).toBe(false);
    expect(csrfOf(await htmlOf(second))).toBe(first.csrf);
  });

  test("sign-in with a wrong password: the page again with the message and the e-mail kept; JSON for the script", async () => {
    const { email } = await signedUp();
    const browser = new Browser(gw.url);
    const { csrf } = await browser.open("/auth/sign-in");

    const page = await browser.post("/auth/sign-in", { csrf, email, password: "wrong password!", redirect: "/" });
    const html = await htmlOf(page);
    expect(page.status).toBe(401);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(html).toMatch(/<div class="alert" role="alert"\s+tabindex="-1">That e-mail and password do not match an account\.<\/div>/);
    expect(html).toContain(`name="email" type="email" autocomplete="username" required value="${email}"`);
    expect(setCookies(page).has(SESSION_COOKIE)).toBe(false);

    const json = await browser.post("/auth/sign-in", { csrf, email, password: "wrong password!", redirect: "/" }, { accept: "application/json" });
    expect(json.status).toBe(401);
    expect(json.headers.get("content-type")).toStartWith("application/json");
    expect(await json.json()).toEqual({ error: "That e-mail and password do not match an account." });
    expect(browser.sessionToken()).toBeUndefined();
  });

  test("sign-in with the script: JSON with the target", async () => {
    const { email } = await signedUp();
    const browser = new Browser(gw.url);
    const { csrf } = await browser.open("/auth/sign-in");
    const response = await browser.post("/auth/sign-in", { csrf, email, password: PASSWORD, redirect: "/next" }, { accept: "application/json" });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ redirect: "/next" });
    expect(browser.sessionToken()).toBeTruthy();
  });

  describe("a post the page did not make is refused, and nobody is signed in", () => {
    const rows: {
      name: string;
      fields(csrf: string): Record<string, string>;
      headers?: Record<string, string>;
      /** Send another csrf cookie than the page set. */
      cookie?: string;
      body?(csrf: string, email: string): { type: string; body: string };
    }[] = [
      { name: "without the token", fields: () => ({}) },
      { name: "with an empty token", fields: () => ({ csrf: "" }) },
      { name: "with a token that is not the cookie's", fields: () => ({ csrf: "Q".repeat(43) }) },
      { name: "with the token but no cookie", fields: (csrf) => ({ csrf }), cookie: "" },
      { name: "with the token and another cookie", fields: (csrf) => ({ csrf }), cookie: `authgate-csrf=${"Q".repeat(43)}` },
      { name: "from another origin, even with a valid token", fields: (csrf) => ({ csrf }), headers: { origin: "https://evil.example" } },
      { name: "from another origin by Referer, even with a valid token", fields: (csrf) => ({ csrf }), headers: { referer: "https://evil.example/page" } },
      {
        name: "as JSON, even with a valid token",
        fields: (csrf) => ({ csrf }),
        body: (csrf, email) => ({ type: "application/json", body: JSON.stringify({ csrf, email, password: PASSWORD, redirect: "/" }) }),
      },
      {
        name: "as text/plain, even with a valid token",
        fields: (csrf) => ({ csrf }),
        body: (csrf, email) => ({ type: "text/plain", body: new URLSearchParams({ csrf, email, password: PASSWORD }).toString() }),
      },
      {
        name: "as multipart, even with a valid token",
        fields: (csrf) => ({ csrf }),
        body: (csrf, email) => ({
          type: "multipart/form-data; boundary=x",
          body: `--x\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n${csrf}\r\n--x\r\nContent-Disposition: form-data; name="email"\r\n\r\n${email}\r\n--x\r\nContent-Disposition: form-data; name="password"\r\n\r\n${PASSWORD}\r\n--x--\r\n`,
        }),
      },
    ];
    let email: string;
    beforeAll(async () => {
      ({ email } = await signedUp());
    });

    test.each(rows.map((row) => [row.name, row] as const))("%s", async (_name, row) => {
      const browser = new Browser(gw.url);
      const { csrf } = await browser.open("/auth/sign-in");
      const sessionsBefore = await sessionCount(email);
      const headers: Record<string, string> = { ...row.headers };
      if (row.cookie !== undefined) headers.cookie = row.cookie;
      const custom = row.body?.(csrf, email);
      const response = custom
        ? await browser.request("POST", "/auth/sign-in", { headers: { accept: BROWSER_ACCEPT, "content-type": custom.type, ...headers }, body: custom.body })
        : await browser.post("/auth/sign-in", { ...row.fields(csrf), email, password: PASSWORD, redirect: "/" }, headers);
      const html = await htmlOf(response);
      expect(response.status).toBe(403);
      expect(html).toContain("This form has expired. Please try again.");
      expect(setCookies(response).has(SESSION_COOKIE)).toBe(false);
      expect(await sessionCount(email)).toBe(sessionsBefore);
    });

    test.each<[string, Record<string, string>]>([
      ["Origin: null (a no-referrer page's form post)", { origin: "null" }],
      ["the gateway's own Origin", {}],
      ["no Origin and no Referer (the token decides)", {}],
    ])("accepted with a valid token: %s", async (name, extra) => {
      const browser = new Browser(gw.url);
      const { csrf } = await browser.open("/auth/sign-in");
      const sessionsBefore = await sessionCount(email);
      const headers = name.startsWith("the gateway's own") ? { origin: gw.url } : extra;
      const response = await browser.post("/auth/sign-in", { csrf, email, password: PASSWORD, redirect: "/" }, headers);
      expect(response.status).toBe(303);
      expect(setCookies(response).get(SESSION_COOKIE)).toBeTruthy();
      expect(await sessionCount(email)).toBe(sessionsBefore + 1);
    });
  });

  test("sign-out: a 303 to the sign-in page, and the session stops working at once", async () => {
    const { browser } = await signedUp();
    const oldCookie = browser.cookieHeader();
    expect((await browser.api("/api/me")).status).toBe(200); // now cached by the gateway
    const { csrf } = await browser.open("/auth/account");

    const response = await browser.post("/auth/sign-out", { csrf });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/auth/sign-in?notice=signed-out");
    expect(setCookies(response).get(SESSION_COOKIE)).toBe("");

    // The old cookie, replayed: the session ended on the server, not only in the jar.
    const replay = await fetch(`${gw.url}/api/me`, { headers: { cookie: oldCookie, accept: "*/*" } });
    expect(replay.status).toBe(401);

    const notice = await browser.get("/auth/sign-in?notice=signed-out");
    expect(await htmlOf(notice)).toContain('<div class="notice" role="status">You are signed out.</div>');
  });

  test("sign-out without the token is refused and the session goes on", async () => {
    const { browser } = await signedUp();
    const response = await browser.post("/auth/sign-out", { csrf: "Q".repeat(43) });
    expect(response.status).toBe(403);
    expect(await htmlOf(response)).toContain("This form has expired");
    expect((await browser.api("/api/me")).status).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------------

describe("where sign-in leads", () => {
  test.each<[string, string, string]>([
    ["to the target", "/auth/sign-in?redirect=%2Fdashboard%3Ftab%3D2", "/dashboard?tab=2"],
    ["to / without one", "/auth/sign-in", "/"],
    ["to / for another origin", "/auth/sign-in?redirect=https%3A%2F%2Fevil.example%2F", "/"],
    ["to / for //evil.example", "/auth/sign-in?redirect=//evil.example", "/"],
  ])("GET the sign-in page while signed in: a 303 %s", async (_name, path, location) => {
    const { browser } = await signedUp();
    const response = await browser.get(path);
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe(location);
  });

  test("?redirect=//evil.example: the page's form carries /, and signing in lands on /", async () => {
    const { email } = await signedUp();
    const browser = new Browser(gw.url);
    const { html, csrf } = await browser.open("/auth/sign-in?redirect=//evil.example");
    expect(html).toContain('name="redirect" value="/"');
    expect(html).not.toContain("evil.example");
    const response = await browser.post("/auth/sign-in", { csrf, email, password: PASSWORD, redirect: "/" });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/");
  });

  test.each<[string, string]>([
    ["//evil.example", "/"],
    ["https://evil.example/", "/"],
    ["/\\evil.example", "/"],
    ["/ok/../inside", "/inside"],
  ])("a posted redirect %p lands on %p", async (redirect, location) => {
    const { email } = await signedUp();
    const browser = new Browser(gw.url);
    const { csrf } = await browser.open("/auth/sign-in");
    const response = await browser.post("/auth/sign-in", { csrf, email, password: PASSWORD, redirect });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe(location);
  });

  // "/.//evil.example" passes the raw checks and normalises to "//evil.example" (another origin).
  test.each<[string]>([["/.//evil.example"], ["/x/..//evil.example"]])("?redirect=%p sends a signed-in browser to /", async (redirect) => {
    const { browser } = await signedUp();
    const response = await browser.get(`/auth/sign-in?redirect=${encodeURIComponent(redirect)}`);
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/");
  });
});

// ---------------------------------------------------------------------------------------------

describe("messages on the sign-in page come from codes only", () => {
  const alertOf = (html: string) => /<div class="alert" role="alert"[^>]*>([^<]*)<\/div>/.exec(html)?.[1];

  test.each<[string, string, string]>([
    ["a known provider code", "access_denied", "Sign-in was cancelled at the provider. Try again, or choose another way to sign in."],
    ["a known Better Auth code", "INVALID_TOKEN", "This link is not valid any more: it was used already or has expired. Ask for a new one."],
    ["text that is not a code", "Your account is locked. Call 555-0100", "Something went wrong. Please try again."],
    ["markup", '<img src=x onerror="alert(1)">', "Something went wrong. Please try again."],
  ])("%s", async (_name, error, message) => {
    const response = await new Browser(gw.url).get(`/auth/sign-in?error=${encodeURIComponent(error)}`);
    const html = await htmlOf(response);
    expect(response.status).toBe(200);
    expect(alertOf(html)).toBe(message);
    expect(html).not.toContain(error);
    expect(html).not.toContain(encodeURIComponent(error));
  });

  test("no error: the alert is there (for the script) but hidden and empty", async () => {
    const html = await htmlOf(await new Browser(gw.url).get("/auth/sign-in"));
    expect(html).toMatch(/<div class="alert" role="alert" hidden tabindex="-1"><\/div>/);
  });

  test("an unknown ?notice= shows nothing", async () => {
    const html = await htmlOf(await new Browser(gw.url).get("/auth/sign-in?notice=you-won-a-prize"));
    expect(html).not.toContain('role="status"');
    expect(html).not.toContain("you-won-a-prize");
  });

  // An Object.prototype name as the code must not be looked up on the prototype
  // (?error=toString would render "[object Object]").
  test.each<[string]>([["toString"], ["constructor"], ["valueOf"]])("?error=%s shows the generic message", async (error) => {
    const html = await htmlOf(await new Browser(gw.url).get(`/auth/sign-in?error=${error}`));
    expect(alertOf(html)).toBe("Something went wrong. Please try again.");
  });
});

// ---------------------------------------------------------------------------------------------

describe("identity providers", () => {
  test("the sign-in and sign-up pages list the OpenID provider's button", async () => {
    for (const path of ["/auth/sign-in?redirect=%2Fx", "/auth/sign-up?redirect=%2Fx"]) {
      const html = await htmlOf(await new Browser(gw.url).get(path));
      expect(html).toContain('<a class="button provider" data-provider="corp" href="/auth/sign-in/provider/corp?redirect=%2Fx">Continue with Corp SSO</a>');
    }
  });

  test.each<[string, string, string]>([
    ["without a target", "/auth/sign-in/provider/corp", "/auth/sign-in?error=PROVIDER_UNAVAILABLE"],
    ["keeping the target", "/auth/sign-in/provider/corp?redirect=%2Fx", "/auth/sign-in?redirect=%2Fx&error=PROVIDER_UNAVAILABLE"],
  ])("a provider nobody answers for: back to the sign-in page with a message, %s", async (_name, path, location) => {
    const browser = new Browser(gw.url);
    const response = await browser.get(path);
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe(location);

    const page = await browser.get(location);
    expect(page.status).toBe(200);
    expect(await htmlOf(page)).toContain("The sign-in provider could not be reached. Please try again later.");
    // And the gateway goes on serving.
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });

  test("an unknown provider id is the 404 page", async () => {
    const response = await new Browser(gw.url).get("/auth/sign-in/provider/nosuch");
    expect(response.status).toBe(404);
    expect(await htmlOf(response)).toContain("There is no page at this address.");
  });
});

// ---------------------------------------------------------------------------------------------

describe("the account page", () => {
  const sessionsOf = (html: string) =>
    [...html.matchAll(/<li data-session-id="([^"]+)">([\s\S]*?)<\/li>/g)].map((match) => ({ id: match[1]!, current: match[2]!.includes("this device") }));

  test("two sessions are listed; revoking the other one ends it at once; no token is ever on the page", async () => {
    const { browser: first, email } = await signedUp();
    const second = await signedIn(email);
    expect((await second.api("/api/me")).status).toBe(200); // cached by the gateway now

    const page = await first.open("/auth/account");
    const sessions = sessionsOf(page.html);
    expect(sessions).toHaveLength(2);
    expect(sessions.filter((session) => session.current)).toHaveLength(1);
    expect(page.html).toContain(`<strong>${email}</strong>`);
    for (const token of [first.sessionToken()!, second.sessionToken()!]) {
      expect(token.length).toBeGreaterThan(10);
      expect(page.html).not.toContain(token);
    }

    const other = sessions.find((session) => !session.current)!;
    const revoked = await first.post("/auth/account/sessions/revoke", { csrf: page.csrf, id: other.id });
    expect(revoked.status).toBe(303);
    expect(revoked.headers.get("location")).toBe("/auth/account?notice=session-revoked");

    expect((await second.api("/api/me")).status).toBe(401);
    expect((await first.api("/api/me")).status).toBe(200);

    const after = await first.get("/auth/account?notice=session-revoked");
    const html = await htmlOf(after);
    expect(sessionsOf(html).map((session) => session.id)).toEqual(sessions.filter((session) => session.current).map((session) => session.id));
    expect(html).toContain("That session was signed out.");
  });

  test("revoking this device's own session signs it out: to the sign-in page, the cookie cleared and dead", async () => {
    const { browser } = await signedUp();
    const oldCookie = browser.cookieHeader();
    expect((await browser.api("/api/me")).status).toBe(200);
    const page = await browser.open("/auth/account");
    const own = sessionsOf(page.html).find((session) => session.current)!;

    const response = await browser.post("/auth/account/sessions/revoke", { csrf: page.csrf, id: own.id });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/auth/sign-in?notice=signed-out");
    expect(setCookies(response).get(SESSION_COOKIE)).toBe("");
    expect((await fetch(`${gw.url}/api/me`, { headers: { cookie: oldCookie, accept: "*/*" } })).status).toBe(401);
  });

  test("revoking a session id that is not the user's is refused, and it goes on", async () => {
    const { email: otherEmail } = await signedUp();
    const stranger = await signedIn(otherEmail);
    const strangerId = sessionsOf((await stranger.open("/auth/account")).html).find((session) => session.current)!.id;

    const { browser } = await signedUp();
    const { csrf } = await browser.open("/auth/account");
    const response = await browser.post("/auth/account/sessions/revoke", { csrf, id: strangerId });
    expect(response.status).toBe(404);
    expect((await stranger.api("/api/me")).status).toBe(200);
  });

  test("revoking the session without the token is refused, and it goes on", async () => {
    const { browser: first, email } = await signedUp();
    const second = await signedIn(email);
    const page = await first.open("/auth/account");
    const other = sessionsOf(page.html).find((session) => !session.current)!;
    const response = await first.post("/auth/account/sessions/revoke", { csrf: "Q".repeat(43), id: other.id });
    expect(response.status).toBe(403);
    expect(await htmlOf(response)).toContain("This form has expired");
    expect((await second.api("/api/me")).status).toBe(200);
  });

  test("change password: a wrong current one gets a readable alert, the right one a notice, and the new one signs in", async () => {
    const { browser, email } = await signedUp();
    const { csrf } = await browser.open("/auth/account");

    const wrong = await browser.post("/auth/account/password", { csrf, currentPassword: "not my password", newPassword: "a brand new password" });
    const wrongHtml = await htmlOf(wrong);
    expect(wrong.status).toBe(400);
    expect(wrongHtml).toMatch(/role="alert"\s+tabindex="-1">Your current password is not correct\.<\/div>/);

    const right = await browser.post("/auth/account/password", { csrf, currentPassword: PASSWORD, newPassword: "a brand new password" });
    expect(right.status).toBe(303);
    expect(right.headers.get("location")).toBe("/auth/account?notice=password-changed");
    const notice = await browser.get("/auth/account?notice=password-changed");
    expect(notice.status).toBe(200);
    expect(await htmlOf(notice)).toContain('<div class="notice" role="status">Your password was changed.</div>');

    await signedIn(email, "a brand new password");
    const old = new Browser(gw.url);
    const { csrf: oldCsrf } = await old.open("/auth/sign-in");
    expect((await old.post("/auth/sign-in", { csrf: oldCsrf, email, password: PASSWORD })).status).toBe(401);
  });

  test("without a session the account page sends the browser to sign in and back", async () => {
    const response = await new Browser(gw.url).get("/auth/account");
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe("/auth/sign-in?redirect=%2Fauth%2Faccount");
  });
});

// ---------------------------------------------------------------------------------------------

describe("the pages and the gateway's limits", () => {
  test("the Swagger spec lists no page", async () => {
    const response = await fetch(`${gw.url}/swagger/json`);
    expect(response.status).toBe(200);
    const spec = (await response.json()) as { paths: Record<string, unknown> };
    const paths = Object.keys(spec.paths);
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.filter((path) => path === "/auth" || path.startsWith("/auth/"))).toEqual([]);
  });

  test.each<[string, number, number]>([
    ["just under 64 KiB is signed in", 60 * 1024, 303],
    ["over 64 KiB is refused (413) before Better Auth sees it", 64 * 1024 + 1, 413],
  ])("a form post of %s", async (_name, size, status) => {
    const { email } = await signedUp();
    const browser = new Browser(gw.url);
    const { csrf } = await browser.open("/auth/sign-in");
    const head = new URLSearchParams({ csrf, email, password: PASSWORD, redirect: "/" }).toString() + "&padding=";
    const body = head + "p".repeat(size - head.length);
    expect(body.length).toBe(size);
    const sessionsBefore = await sessionCount(email);
    const response = await browser.request("POST", "/auth/sign-in", {
      headers: { accept: BROWSER_ACCEPT, "content-type": "application/x-www-form-urlencoded" },
      body,
    });
    expect(response.status).toBe(status);
    expect(await sessionCount(email)).toBe(sessionsBefore + (status === 303 ? 1 : 0));
    if (status === 413) {
      expect(await response.json()).toEqual({ error: "Request body too large" });
      expect(setCookies(response).has(SESSION_COOKIE)).toBe(false);
    }
  });
});
