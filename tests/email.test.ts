import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startBackend, type TestBackend } from "./helpers/backend";
import { signUp, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";
import { startBrokenSmtp, startMailbox, type Mailbox, type ReceivedMail } from "./helpers/mailbox";
import { spawnGateway, type GatewayProcess } from "./helpers/process";
import { rawHttp } from "./helpers/raw-http";

/**
 * Verification and password-reset mail end to end: a real gateway on a loopback port, a real
 * SMTP server (tests/helpers/mailbox.ts) that requires the credentials of SMTP_URL and parses
 * every mail, SMTP servers that fail the ways real ones do, and the sign-in pages' forms driven
 * with plain fetch and a cookie jar. What is checked: the links in the mail (built from
 * BETTER_AUTH_URL, never from the request's Host or forwarded headers), that they work once,
 * that a reset ends the other sessions, verification before sign-in, the 503 when the mail could
 * not be sent (within SMTP_TIMEOUT_MS, not the worker's deadline), and what is offered without
 * SMTP in development and in production.
 */

const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const PASSWORD = "correct horse battery";
const NEW_PASSWORD = "a brand new passphrase";
const SESSION_COOKIE = "better-auth.session_token";
const EMAIL_FROM = "Acme Accounts <no-reply@acme.test>";
// Characters that must survive the URL's percent-decoding (nodemailer decodes the userinfo).
const SMTP_USER = "acme-mailer";
const SMTP_PASS = "p@ss:w/rd#s3cret";

const newEmail = (label = "user") => `${label}-${crypto.randomUUID()}@example.test`;

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** HTML with character references decoded, as a browser reads it (Mustache writes "/" as "&#x2F;", "=" as "&#x3D;"). */
function decodeHtml(html: string): string {
  return html.replace(/&(?:#x([0-9a-f]+)|#(\d+)|([a-z]+));/gi, (whole, hex, decimal, name) =>
    hex ? String.fromCodePoint(parseInt(hex, 16)) : decimal ? String.fromCodePoint(Number(decimal)) : (ENTITIES[name.toLowerCase()] ?? whole),
  );
}

/** The page's hidden form token (the value of the authgate-csrf cookie). */
function csrfOf(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error(`no csrf input in:\n${html.slice(0, 500)}`);
  return match[1]!;
}

/** The text of the page's role="alert" box; "" when it is hidden (no error). */
function alertOf(html: string): string {
  const match = /<div class="alert" role="alert"([^>]*)>([\s\S]*?)<\/div>/.exec(html);
  if (!match) throw new Error(`no alert box in:\n${html.slice(0, 500)}`);
  return match[1]!.includes("hidden") ? "" : decodeHtml(match[2]!).trim();
}

/** Just the cookies a browser would store from a response, name → value (deleted ones as ""). */
function setCookies(response: Response): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(";");
    const at = pair!.indexOf("=");
    const expired = attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute));
    cookies.set(pair!.slice(0, at).trim(), expired ? "" : pair!.slice(at + 1).trim());
  }
  return cookies;
}

/** A browser over plain fetch: a cookie jar, redirects not followed. */
class Browser {
  readonly cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
  }

  hasSession(): boolean {
    return Boolean(this.cookies.get(SESSION_COOKIE));
  }

  async request(method: string, path: string, init: { headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0 && !headers.has("cookie")) headers.set("cookie", this.cookieHeader());
    const url = path.startsWith("http") ? path : `${this.base}${path}`;
    const response = await fetch(url, { method, headers, body: init.body, redirect: "manual" });
    for (const [name, value] of setCookies(response)) {
      if (value) this.cookies.set(name, value);
      else this.cookies.delete(name);
    }
    return response;
  }

  /** GET a page as a browser navigates to it: its status, decoded HTML and form token (the jar keeps the cookie). */
  async open(path: string): Promise<{ status: number; html: string; csrf: string }> {
    const response = await this.request("GET", path, { headers: { accept: BROWSER_ACCEPT } });
    const html = decodeHtml(await response.text());
    // A page without a form (reset not offered) still sets the token's cookie.
    const csrf = html.includes('name="csrf"') ? csrfOf(html) : (this.cookies.get("authgate-csrf") ?? "");
    if (html.includes('name="csrf"')) expect(csrf).toBe(this.cookies.get("authgate-csrf")!);
    return { status: response.status, html, csrf };
  }

  /** POST a page's form, urlencoded, as the browser sends it. */
  post(path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    return this.request("POST", path, {
      headers: { accept: BROWSER_ACCEPT, "content-type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /** GET the page at `path`, then post its form with `fields` and the page's token. */
  async submit(page: string, fields: Record<string, string>, options: { action?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    const { csrf } = await this.open(page);
    return this.post(options.action ?? page.split("?")[0]!, { csrf, ...fields }, options.headers);
  }

  /** The session as Better Auth's API answers it for this jar (null: none). */
  async session(): Promise<{ user: { email: string; emailVerified: boolean } } | null> {
    const response = await this.request("GET", "/api/auth/get-session", { headers: { accept: "application/json" } });
    expect(response.status).toBe(200);
    return (await response.json()) as { user: { email: string; emailVerified: boolean } } | null;
  }
}

const html = async (response: Response) => decodeHtml(await response.text());

/** The only link to the gateway's pages in a mail's text part. */
function linkIn(text: string): string {
  const links = [...text.matchAll(/https?:\/\/\S+/g)].map((m) => m[0]);
  expect(links).toHaveLength(1);
  return links[0]!;
}

/** The href of every <a> in a mail's HTML part, decoded as a mail client reads them. */
function hrefsIn(mailHtml: string): string[] {
  return [...mailHtml.matchAll(/<a\s[^>]*href="([^"]*)"/gi)].map((m) => decodeHtml(m[1]!));
}

/** The From header's sender, as mailparser read it. */
const fromHeader = (mail: ReceivedMail) => (mail.headers.get("from") as { value: { name: string; address: string }[] } | undefined)?.value;
const toMail = (address: string) => (mail: ReceivedMail) => mail.to.includes(address);

async function signUpWithPage(browser: Browser, email: string, name = "Page User"): Promise<Response> {
  return browser.submit("/auth/sign-up", { name, email, password: PASSWORD, redirect: "/" });
}

async function signInWithPage(base: string, email: string, password: string): Promise<{ browser: Browser; response: Response }> {
  const browser = new Browser(base);
  const response = await browser.submit("/auth/sign-in", { email, password, redirect: "/" });
  return { browser, response };
}

const logged = (gw: RunningGateway) => gw.logLines.map((line) => JSON.parse(line) as Record<string, unknown>);

// ---------------------------------------------------------------------------------------------

const dir = tempDir();
let mailbox: Mailbox;
let backend: TestBackend;
/** APP_NAME=Acme, SMTP to the mailbox, TRUSTED_PROXIES=127.0.0.1 (so forwarded headers are believed). */
let gw: RunningGateway;

beforeAll(async () => {
  mailbox = await startMailbox({ user: SMTP_USER, pass: SMTP_PASS });
  backend = startBackend();
  mkdirSync(join(dir.path, "main"));
  gw = await startGateway(
    {
      APP_NAME: "Acme",
      SMTP_URL: mailbox.url,
      EMAIL_FROM,
      TRUSTED_PROXIES: "127.0.0.1",
      BACKEND_API_URL: backend.url,
    },
    join(dir.path, "main"),
  );
  backend.trustGateway(gw.url, gw.url);
});

afterAll(async () => {
  await gw?.stop();
  await mailbox?.stop();
  await backend?.stop();
  dir.remove();
});

describe("forgot password, end to end", () => {
  test("the mail's link resets the password once, ends the other sessions, and the new password signs in", async () => {
    const email = newEmail("reset");
    const first = new Browser(gw.url);
    const signedUp = await signUpWithPage(first, email);
    expect(signedUp.status).toBe(303);
    expect(first.hasSession()).toBe(true);
    // A second session (another device), used once so the gateway's session cache holds it.
    const { browser: second, response: secondSignIn } = await signInWithPage(gw.url, email, PASSWORD);
    expect(secondSignIn.status).toBe(303);
    expect((await second.request("GET", "/api/whoami", { headers: { accept: "application/json" } })).status).toBe(200);
    expect((await first.session())?.user.email).toBe(email);

    // The form.
    const asker = new Browser(gw.url);
    const asked = await asker.submit("/auth/forgot-password", { email });
    expect(asked.status).toBe(303);
    expect(asked.headers.get("location")).toBe("/auth/sign-in?notice=reset-sent");
    const notice = await asker.open(asked.headers.get("location")!);
    expect(notice.html).toContain("a link to reset its password is on its way");

    // The mail.
    const mail = await mailbox.next(toMail(email));
    expect(mail.to).toEqual([email]);
    expect(mail.from).toBe("no-reply@acme.test");
    expect(fromHeader(mail)).toEqual([{ name: "Acme Accounts", address: "no-reply@acme.test" }]);
    expect(mail.subject).toContain("Acme");
    expect(mail.subject).toBe("Reset your Acme password");
    const link = linkIn(mail.text);
    expect(link).toMatch(new RegExp(`^${gw.url.replace(/\./g, "\\.")}/auth/reset-password\\?token=[A-Za-z0-9_%-]+$`));
    expect(hrefsIn(mail.html)).toEqual([link, link]);
    expect(decodeHtml(mail.html)).toContain(link);
    // The mail server accepted the login from SMTP_URL's (percent-decoded) credentials.
    expect(mailbox.logins).toContain(SMTP_USER);
    for (const line of gw.logLines) expect(line).not.toContain(SMTP_PASS);
    expect(logged(gw).some((line) => line.msg === "e-mail sent" && line.kind === "reset-password")).toBe(true);
    const token = new URL(link).searchParams.get("token")!;

    // The link opens the form with the token in it.
    const resetter = new Browser(gw.url);
    const resetPage = await resetter.open(link);
    expect(resetPage.status).toBe(200);
    expect(resetPage.html).toMatch(/<input[^>]*name="newPassword"/);
    expect(resetPage.html).toContain(`name="token" value="${token}"`);
    const reset = await resetter.post("/auth/reset-password", { csrf: resetPage.csrf, token, newPassword: NEW_PASSWORD });
    expect(reset.status).toBe(303);
    expect(reset.headers.get("location")).toBe("/auth/sign-in?notice=password-reset");

    // The new password signs in, the old one does not.
    const withNew = await signInWithPage(gw.url, email, NEW_PASSWORD);
    expect(withNew.response.status).toBe(303);
    expect(withNew.browser.hasSession()).toBe(true);
    expect((await withNew.browser.session())?.user.email).toBe(email);
    const withOld = await signInWithPage(gw.url, email, PASSWORD);
    expect(withOld.response.status).toBe(401);
    expect(withOld.browser.hasSession()).toBe(false);
    expect(alertOf(await html(withOld.response))).toBe("That e-mail and password do not match an account.");

    // The link works once.
    const again = new Browser(gw.url);
    const againPage = await again.open(link);
    const reused = await again.post("/auth/reset-password", { csrf: againPage.csrf, token, newPassword: "yet another passphrase" });
    expect(reused.status).toBe(400);
    expect(alertOf(await html(reused))).toContain("This link is not valid any more");
    expect((await signInWithPage(gw.url, email, "yet another passphrase")).response.status).toBe(401);

    // The sessions from before the reset are over, in Better Auth and at the proxy (its cache was dropped).
    expect(await first.session()).toBeNull();
    expect(await second.session()).toBeNull();
    expect((await second.request("GET", "/api/whoami", { headers: { accept: "application/json" } })).status).toBe(401);
    expect((await first.request("GET", "/api/whoami", { headers: { accept: "application/json" } })).status).toBe(401);
  }, 30_000);

  test("an address without an account gets the same answer and no mail", async () => {
    const email = newEmail("nobody");
    const before = mailbox.messages.length;
    const asked = await new Browser(gw.url).submit("/auth/forgot-password", { email });
    expect(asked.status).toBe(303);
    expect(asked.headers.get("location")).toBe("/auth/sign-in?notice=reset-sent");
    // The answer came after the send would have finished (a send resolves once the mail is stored).
    expect(mailbox.messages.slice(before).filter(toMail(email))).toEqual([]);
  });
});

describe("host poisoning: the link is built from BETTER_AUTH_URL, never from the request", () => {
  /** Asserts the next reset mail to `email` links to the gateway's own origin, and returns the link. */
  async function expectOwnLink(email: string): Promise<string> {
    const mail = await mailbox.next(toMail(email));
    const link = linkIn(mail.text);
    expect(link.startsWith(`${gw.url}/auth/reset-password?token=`)).toBe(true);
    for (const part of [mail.text, mail.html, decodeHtml(mail.html), mail.raw]) expect(part).not.toContain("evil");
    for (const href of hrefsIn(mail.html)) expect(new URL(href).origin).toBe(gw.url);
    return link;
  }

  test("the form posted with Host: evil.example (raw socket)", async () => {
    const { user } = await signUp(gw.url, newEmail("host"));
    const { csrf } = await new Browser(gw.url).open("/auth/forgot-password");
    const body = new URLSearchParams({ csrf, email: user.email }).toString();
    const port = Number(new URL(gw.url).port);
    const response = await rawHttp(
      port,
      "POST /auth/forgot-password HTTP/1.1\r\n" +
        "Host: evil.example\r\n" +
        // The request's own origin (as the gateway sees it): its Origin check lets it through.
        "Origin: http://evil.example\r\n" +
        `Cookie: authgate-csrf=${csrf}\r\n` +
        "Content-Type: application/x-www-form-urlencoded\r\n" +
        `Accept: ${BROWSER_ACCEPT}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        "Connection: close\r\n\r\n" +
        body,
    );
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/auth/sign-in?notice=reset-sent");
    await expectOwnLink(user.email);
  });

  test("the JSON API called with Host: evil.example (raw socket)", async () => {
    const { user } = await signUp(gw.url, newEmail("host-api"));
    const body = JSON.stringify({ email: user.email, redirectTo: "/auth/reset-password" });
    const port = Number(new URL(gw.url).port);
    const response = await rawHttp(
      port,
      "POST /api/auth/request-password-reset HTTP/1.1\r\n" +
        "Host: evil.example\r\n" +
        "Content-Type: application/json\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        "Connection: close\r\n\r\n" +
        body,
    );
    expect(response.status).toBe(200);
    expect(JSON.parse(response.text)).toMatchObject({ status: true });
    await expectOwnLink(user.email);
  });

  test("the form posted through a trusted proxy with X-Forwarded-Host: evil.example and X-Forwarded-Proto: https", async () => {
    const { user } = await signUp(gw.url, newEmail("forwarded"));
    const browser = new Browser(gw.url);
    const forwarded = { "x-forwarded-host": "evil.example", "x-forwarded-proto": "https" };
    const { csrf } = await browser.open("/auth/forgot-password");
    // The gateway believes the proxy: the request's origin is https://evil.example, so its Origin passes.
    const response = await browser.post("/auth/forgot-password", { csrf, email: user.email }, { ...forwarded, origin: "https://evil.example" });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/auth/sign-in?notice=reset-sent");
    const link = await expectOwnLink(user.email);
    // And the link still works.
    const resetter = new Browser(gw.url);
    const page = await resetter.open(link);
    const reset = await resetter.post("/auth/reset-password", { csrf: page.csrf, token: new URL(link).searchParams.get("token")!, newPassword: NEW_PASSWORD });
    expect(reset.status).toBe(303);
    expect((await signInWithPage(gw.url, user.email, NEW_PASSWORD)).response.status).toBe(303);
  });

  test("the JSON API through a trusted proxy with forwarded host and proto, and an Origin of that host", async () => {
    const { user } = await signUp(gw.url, newEmail("forwarded-api"));
    const response = await fetch(`${gw.url}/api/auth/request-password-reset`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-host": "evil.example", "x-forwarded-proto": "https" },
      body: JSON.stringify({ email: user.email }),
    });
    expect(response.status).toBe(200);
    await expectOwnLink(user.email);
  });
});

/**
 * Better Auth turns its own origin checks off (advanced.disableOriginCheck) when NODE_ENV is
 * "test" or TEST is set, which `bun test` does for the auth worker too: src/auth/index.ts does
 * not set the option, so under this runner a `redirectTo` on another origin is accepted and
 * put in the mail (the link then redirects there with the token). `checked` is a gateway
 * process started with NODE_ENV=development, as a deployment would be.
 */
describe("host poisoning with PAGES=off: Better Auth's own link", () => {
  let off: RunningGateway;
  let checked: GatewayProcess;

  beforeAll(async () => {
    mkdirSync(join(dir.path, "off"));
    off = await startGateway({ PAGES: "off", SMTP_URL: mailbox.url, EMAIL_FROM }, join(dir.path, "off"));
    mkdirSync(join(dir.path, "off-checked"));
    // Its own process: a worker's environment is the process's from its start (NODE_ENV=test here).
    checked = await spawnGateway(undefined, {
      env: { NODE_ENV: "development", PAGES: "off", SMTP_URL: mailbox.url, EMAIL_FROM, DATABASE_URL: join(dir.path, "off-checked", "authgate.db") },
    });
  });

  afterAll(async () => {
    await off?.stop();
    await checked?.stop();
  });

  const ask = (gateway: { url: string }, host: string, body: object) => {
    const json = JSON.stringify(body);
    return rawHttp(
      Number(new URL(gateway.url).port),
      "POST /api/auth/request-password-reset HTTP/1.1\r\n" +
        `Host: ${host}\r\n` +
        "Content-Type: application/json\r\n" +
        `Content-Length: ${Buffer.byteLength(json)}\r\n` +
        "Connection: close\r\n\r\n" +
        json,
    );
  };

  test("with Host: evil.example the link is still on BETTER_AUTH_URL", async () => {
    const { user } = await signUp(off.url, newEmail("off"));
    const response = await ask(off, "evil.example", { email: user.email, redirectTo: "/reset" });
    expect(response.status).toBe(200);
    const mail = await mailbox.next(toMail(user.email));
    const link = linkIn(mail.text);
    expect(link.startsWith(`${off.url}/api/auth/reset-password/`)).toBe(true);
    expect(mail.raw).not.toContain("evil");
    for (const href of hrefsIn(mail.html)) expect(new URL(href).origin).toBe(off.url);
    // The link leads to the gateway's own path with the token.
    const followed = await fetch(link, { redirect: "manual" });
    expect(followed.status).toBe(302);
    expect(followed.headers.get("location")).toStartWith(`${off.url}/reset?token=`);
  });

  /** A reset asked for with `redirectTo` on another origin must be refused, and no mail sent. */
  async function expectForeignRedirectRefused(gateway: { url: string }) {
    const { user } = await signUp(gateway.url, newEmail("off-redirect"));
    const response = await ask(gateway, "evil.example", { email: user.email, redirectTo: "http://evil.example/steal" });
    expect(response.status).toBe(403);
    expect(JSON.parse(response.text)).toMatchObject({ code: "INVALID_REDIRECT_URL" });
    // A later, good request's mail is the user's only one: the refused one was never sent.
    expect((await ask(gateway, new URL(gateway.url).host, { email: user.email, redirectTo: "/reset" })).status).toBe(200);
    const mail = await mailbox.next(toMail(user.email));
    expect(mail.raw).not.toContain("evil");
    expect(mailbox.messages.filter(toMail(user.email))).toHaveLength(1);
  }

  test("a redirectTo on another origin is refused and no mail carries it (Better Auth's checks on)", async () => {
    await expectForeignRedirectRefused(checked);
  }, 30_000);

  test("a redirectTo on another origin is refused under NODE_ENV=test too", async () => {
    await expectForeignRedirectRefused(off);
  }, 30_000);
});

describe("the mail's HTML escapes the user's name", () => {
  test("a name with markup is text in the HTML part, and as typed in the text part", async () => {
    const email = newEmail("markup");
    const browser = new Browser(gw.url);
    expect((await signUpWithPage(browser, email, "<b>Ada</b><script>alert(1)</script>")).status).toBe(303);
    expect((await new Browser(gw.url).submit("/auth/forgot-password", { email })).status).toBe(303);
    const mail = await mailbox.next(toMail(email));
    expect(mail.html).toContain("&lt;b&gt;Ada");
    expect(mail.html).not.toContain("<b>Ada");
    expect(mail.html).not.toContain("<script");
    expect(mail.html).toContain("&lt;script&gt;");
    expect(mail.text).toContain("Hello <b>Ada</b><script>alert(1)</script>,");
  });
});

// ---------------------------------------------------------------------------------------------

describe("REQUIRE_EMAIL_VERIFICATION=true", () => {
  let verifying: RunningGateway;
  let inbox: Mailbox;
  let api: TestBackend;

  beforeAll(async () => {
    inbox = await startMailbox();
    api = startBackend();
    mkdirSync(join(dir.path, "verify"));
    verifying = await startGateway(
      { APP_NAME: "Acme", SMTP_URL: inbox.url, EMAIL_FROM, REQUIRE_EMAIL_VERIFICATION: "true", BACKEND_API_URL: api.url },
      join(dir.path, "verify"),
    );
    api.trustGateway(verifying.url, verifying.url);
  });

  afterAll(async () => {
    await verifying?.stop();
    await inbox?.stop();
    await api?.stop();
  });

  test("sign-up sends the mail and no session; sign-in waits for the link; the link verifies and signs in; the backend's JWT says so", async () => {
    const email = newEmail("verify");
    const browser = new Browser(verifying.url);
    const signedUp = await browser.submit("/auth/sign-up", { name: "Vera", email, password: PASSWORD, redirect: "/app/home" });
    expect(signedUp.status).toBe(303);
    expect(signedUp.headers.get("location")).toBe(`/auth/verify-email?sent=1&redirect=${encodeURIComponent("/app/home")}`);
    expect(browser.hasSession()).toBe(false);
    const inboxPage = await browser.open(signedUp.headers.get("location")!);
    expect(inboxPage.html).toContain("We sent you a link");

    const mail = await inbox.next(toMail(email));
    expect(mail.subject).toBe("Verify your e-mail address for Acme");
    expect(fromHeader(mail)).toEqual([{ name: "Acme Accounts", address: "no-reply@acme.test" }]);
    const link = linkIn(mail.text);
    expect(link.startsWith(`${verifying.url}/auth/verify-email?token=`)).toBe(true);
    expect(hrefsIn(mail.html)).toEqual([link, link]);

    // Before verifying: refused, with the way to a new link.
    const early = await signInWithPage(verifying.url, email, PASSWORD);
    expect(early.response.status).toBe(403);
    expect(early.browser.hasSession()).toBe(false);
    const earlyHtml = await html(early.response);
    expect(alertOf(earlyHtml)).toBe("Please verify your e-mail address first: follow the link we sent you, or send a new one.");
    const resendForm = /<form method="post" action="\/auth\/verify-email\/resend"[\s\S]*?<\/form>/.exec(earlyHtml)?.[0];
    expect(resendForm).toBeDefined();
    expect(resendForm).toContain(`name="email" value="${email}"`);

    // Resend: a second mail.
    const resent = await early.browser.post("/auth/verify-email/resend", { csrf: csrfOf(earlyHtml), email, redirect: "/" });
    expect(resent.status).toBe(303);
    expect(resent.headers.get("location")).toBe("/auth/verify-email?sent=1");
    const second = await inbox.next(toMail(email));
    const secondLink = linkIn(second.text);
    expect(secondLink.startsWith(`${verifying.url}/auth/verify-email?token=`)).toBe(true);
    expect(inbox.messages.filter(toMail(email))).toHaveLength(2);

    // The link: verified, and signed in (autoSignIn).
    const follower = new Browser(verifying.url);
    const verified = await follower.open(secondLink);
    expect(verified.status).toBe(200);
    expect(verified.html).toContain("<h1 id=\"page-title\">E-mail verified</h1>");
    expect(verified.html).toContain("Your e-mail address is verified.");
    expect(follower.hasSession()).toBe(true);
    expect(await follower.session()).toMatchObject({ user: { email, emailVerified: true } });

    // Now the password signs in, and the backend's JWT carries email_verified.
    const later = await signInWithPage(verifying.url, email, PASSWORD);
    expect(later.response.status).toBe(303);
    expect(later.browser.hasSession()).toBe(true);
    const whoami = await later.browser.request("GET", "/api/whoami", { headers: { accept: "application/json" } });
    expect(whoami.status).toBe(200);
    const { claims, jwtError } = (await whoami.json()) as { claims: Record<string, unknown> | null; jwtError: string | null };
    expect(jwtError).toBeNull();
    expect(claims).toMatchObject({ email, email_verified: true });
  }, 30_000);

  test("a forged or tampered verification link verifies nothing", async () => {
    const email = newEmail("forged");
    const browser = new Browser(verifying.url);
    expect((await browser.submit("/auth/sign-up", { name: "Fay", email, password: PASSWORD, redirect: "/" })).status).toBe(303);
    const link = linkIn((await inbox.next(toMail(email))).text);
    const token = new URL(link).searchParams.get("token")!;
    // The JWT's signature broken: the last character changed.
    const tampered = token.slice(0, -2) + (token.at(-2) === "A" ? "B" : "A") + token.at(-1);
    const follower = new Browser(verifying.url);
    const page = await follower.open(`/auth/verify-email?token=${encodeURIComponent(tampered)}`);
    expect(page.status).toBeGreaterThanOrEqual(400);
    expect(alertOf(page.html)).not.toBe("");
    expect(page.html).not.toContain("E-mail verified");
    expect(follower.hasSession()).toBe(false);
    expect((await signInWithPage(verifying.url, email, PASSWORD)).response.status).toBe(403);
  });
});

// ---------------------------------------------------------------------------------------------

describe.each([
  { kind: "silent" as const, code: "ETIMEDOUT", responseCode: undefined },
  { kind: "rejects" as const, code: "EENVELOPE", responseCode: 550 },
  { kind: "auth-fails" as const, code: "EAUTH", responseCode: 535 },
])("SMTP down ($kind): the user is told, within SMTP_TIMEOUT_MS", ({ kind, code, responseCode }) => {
  let broken: { url: string; stop(): Promise<void> };
  let down: RunningGateway;
  let email: string;

  beforeAll(async () => {
    broken = await startBrokenSmtp(kind);
    mkdirSync(join(dir.path, `down-${kind}`));
    // 500 ms: well under the auth worker's 15 s deadline, which would answer "Sign-in is unavailable" instead.
    down = await startGateway({ SMTP_URL: broken.url, EMAIL_FROM, SMTP_TIMEOUT_MS: "500" }, join(dir.path, `down-${kind}`));
    email = (await signUp(down.url, newEmail("down"))).user.email;
  });

  afterAll(async () => {
    await down?.stop();
    await broken?.stop();
  });

  test("the forgot-password page answers 503 with the message, as a page and as JSON", async () => {
    const browser = new Browser(down.url);
    const page = await browser.submit("/auth/forgot-password", { email });
    expect(page.status).toBe(503);
    const body = await html(page);
    expect(alertOf(body)).toBe("We could not send the e-mail. Please try again later.");
    expect(body).not.toContain("on its way");
    // The form again, with the address kept.
    expect(body).toContain(`name="email" type="email" autocomplete="email" required value="${email}"`);

    const json = await browser.submit("/auth/forgot-password", { email }, { headers: { accept: "application/json" } });
    expect(json.status).toBe(503);
    expect(json.headers.get("content-type")).toStartWith("application/json");
    expect(await json.json()).toEqual({ error: "We could not send the e-mail. Please try again later." });
  }, 30_000);

  test("the JSON API answers 503 EMAIL_NOT_SENT, not Better Auth's success", async () => {
    const response = await fetch(`${down.url}/api/auth/request-password-reset`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email }),
    });
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("60");
    expect(await response.json()).toEqual({ error: "Could not send the e-mail, try again later", code: "EMAIL_NOT_SENT" });
  }, 30_000);

  test("the log says why, without the SMTP password; the gateway keeps serving", async () => {
    // One more failed send, so this test stands alone.
    const failed = await fetch(`${down.url}/api/auth/request-password-reset`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email }),
    });
    expect(failed.status).toBe(503);
    const lines = logged(down).filter((line) => line.msg === "e-mail could not be sent");
    expect(lines.length).toBeGreaterThanOrEqual(1);
    for (const line of lines) {
      expect(line).toMatchObject({ level: "error", kind: "reset-password", code });
      expect(line.responseCode).toBe(responseCode);
      // The server's message quotes the recipient; it stays out.
      expect(JSON.stringify(line)).not.toContain(email);
    }
    const password = decodeURIComponent(new URL(broken.url).password);
    expect(password.length).toBeGreaterThan(0);
    for (const line of down.logLines) {
      expect(line).not.toContain(password);
      expect(line).not.toContain(broken.url);
    }

    expect((await fetch(`${down.url}/healthz`)).status).toBe(200);
    const signedIn = await signInWithPage(down.url, email, PASSWORD);
    expect(signedIn.response.status).toBe(303);
    expect(signedIn.browser.hasSession()).toBe(true);
  }, 30_000);

  test("a failed send is that request's alone: one for nobody, sent at the same time, still succeeds", async () => {
    const ask = (address: string) =>
      fetch(`${down.url}/api/auth/request-password-reset`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: address }),
      });
    const [forUser, forNobody] = await Promise.all([ask(email), ask(newEmail("nobody"))]);
    expect(forUser.status).toBe(503);
    expect(forNobody.status).toBe(200);
    const after = await ask(newEmail("nobody"));
    expect(after.status).toBe(200);
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------

describe("no SMTP_URL in development: the link goes to the log", () => {
  let dev: RunningGateway;

  beforeAll(async () => {
    mkdirSync(join(dir.path, "dev"));
    dev = await startGateway({}, join(dir.path, "dev"));
  });

  afterAll(async () => {
    await dev?.stop();
  });

  test("forgot-password answers reset-sent, the warning carries the link, and the link works", async () => {
    const { user } = await signUp(dev.url, newEmail("dev"));
    const signIn = await new Browser(dev.url).open("/auth/sign-in");
    expect(signIn.html).toContain('href="/auth/forgot-password">Forgot your password?</a>');
    const asked = await new Browser(dev.url).submit("/auth/forgot-password", { email: user.email });
    expect(asked.status).toBe(303);
    expect(asked.headers.get("location")).toBe("/auth/sign-in?notice=reset-sent");

    const warnings = logged(dev).filter((line) => line.msg === "e-mail not sent: no SMTP_URL (development); its link is here instead" && line.to === user.email);
    expect(warnings).toHaveLength(1);
    const warning = warnings[0]!;
    expect(warning).toMatchObject({ level: "warn", kind: "reset-password" });
    const link = String(warning.link);
    expect(link).toMatch(new RegExp(`^${dev.url.replace(/\./g, "\\.")}/auth/reset-password\\?token=.+`));

    const resetter = new Browser(dev.url);
    const page = await resetter.open(link);
    const reset = await resetter.post("/auth/reset-password", { csrf: page.csrf, token: new URL(link).searchParams.get("token")!, newPassword: NEW_PASSWORD });
    expect(reset.status).toBe(303);
    expect(reset.headers.get("location")).toBe("/auth/sign-in?notice=password-reset");
    expect((await signInWithPage(dev.url, user.email, NEW_PASSWORD)).response.status).toBe(303);
  });
});

describe("no SMTP_URL in production: nothing that needs mail is offered", () => {
  let prod: RunningGateway;

  beforeAll(async () => {
    mkdirSync(join(dir.path, "prod"));
    prod = await startGateway({ NODE_ENV: "production", BETTER_AUTH_SECRET: "production-secret-production-secret-0123456789" }, join(dir.path, "prod"));
  });

  afterAll(async () => {
    await prod?.stop();
  });

  test("no 'Forgot your password?' link, the page is a 404 that says so, and its form post is refused", async () => {
    const browser = new Browser(prod.url);
    const signIn = await browser.open("/auth/sign-in");
    expect(signIn.status).toBe(200);
    expect(signIn.html).toContain("Create an account");
    expect(signIn.html).not.toContain("Forgot your password?");
    expect(signIn.html).not.toContain("/auth/forgot-password");

    const forgot = await browser.open("/auth/forgot-password");
    expect(forgot.status).toBe(404);
    expect(forgot.html).toContain("Password reset by e-mail is not available here.");
    expect(forgot.html).not.toContain('action="/auth/forgot-password"');

    const posted = await browser.post("/auth/forgot-password", { csrf: forgot.csrf, email: newEmail("prod") });
    expect(posted.status).toBe(404);
    expect(alertOf(await html(posted))).toBe("Password reset is not available here. Ask your administrator.");
  });

  test("the JSON API refuses a reset with a 4xx error, not a 'check your e-mail' success", async () => {
    const { user } = await signUp(prod.url, newEmail("prod-api"));
    const response = await fetch(`${prod.url}/api/auth/request-password-reset`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: prod.url },
      body: JSON.stringify({ email: user.email }),
    });
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect(response.headers.get("content-type")).toStartWith("application/json");
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.status).not.toBe(true);
    expect(typeof body.message === "string" || typeof body.error === "string").toBe(true);
    expect(logged(prod).some((line) => String(line.msg).startsWith("e-mail not sent"))).toBe(false);
  });
});
