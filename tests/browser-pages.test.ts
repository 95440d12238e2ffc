import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { startBackend, type TestBackend } from "./helpers/backend";
import { startGateway, tempDir, type RunningGateway } from "./helpers/gateway";

/**
 * The sign-in pages in a real browser (Debian's Chromium, driven by playwright-core): sign up
 * on the page and land on a protected single-page app whose `fetch("/api/whoami")` shows what
 * the backend read from its verified JWT; sign out; a protected deep link goes through the
 * sign-in page and back; an open redirect is refused; the account page lists and revokes
 * sessions; the keyboard alone signs in; nothing is loaded from another origin; the forms
 * work with JavaScript off. With SCREENSHOTS=<dir> the README's screenshots are written there.
 */

const CHROMIUM = "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available) console.warn(`${CHROMIUM} not found (apt-get install chromium): the sign-in pages' browser test is skipped`);

const APP_JS = `
const out = document.getElementById("who");
fetch("/api/whoami").then(async (response) => {
  const answer = response.ok ? await response.json() : null;
  out.textContent = answer && answer.claims ? "signed in as " + answer.claims.email + " (" + answer.claims.sub + ")" : "no identity (" + response.status + ")";
  out.dataset.status = String(response.status);
});
document.getElementById("route").textContent = location.pathname + location.search;
`;
const INDEX_HTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>App</title>
<script type="module" src="/assets/app-1a2b3c4d.js"></script></head>
<body><h1>The app</h1><p>route: <span id="route"></span></p><p id="who" data-status="">…</p>
<p><a href="/auth/account">Your account</a></p></body></html>`;

const PASSWORD = "correct horse battery";

describe.skipIf(!available)("the sign-in pages, in Chromium", () => {
  let backend: TestBackend;
  let gw: RunningGateway;
  let browser: Browser;
  const dir = tempDir();
  const shots = process.env.SCREENSHOTS ? resolve(process.env.SCREENSHOTS) : join(dir.path, "screenshots");
  /** Every URL any page of the test asked for: all must be the gateway's. */
  const requested: string[] = [];
  const consoleErrors: string[] = [];
  /** Answers of 400 and above: only the ones a test provokes (a wrong password, the app's 401 before sign-in). */
  const failedLoads: string[] = [];

  beforeAll(async () => {
    backend = startBackend();
    const dist = join(dir.path, "dist");
    mkdirSync(join(dist, "assets"), { recursive: true });
    writeFileSync(join(dist, "index.html"), INDEX_HTML);
    writeFileSync(join(dist, "assets", "app-1a2b3c4d.js"), APP_JS);
    const file = join(dir.path, "authgate.toml");
    writeFileSync(
      file,
      `[[routes]]
name = "api"
path = "/api"
upstream = "${backend.url}"

[[routes]]
name = "app"
path = "/"
static = "./dist"
spa = true
auth = "required"
`,
    );
    gw = await startGateway({ CONFIG_FILE: file, APP_NAME: "Acme" }, dir.path);
    backend.trustGateway(gw.url, gw.url);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
    mkdirSync(shots, { recursive: true });
  });

  // Each test drives several pages in a browser on a shared 2-core machine.
  afterAll(async () => {
    await browser?.close();
    await gw?.stop();
    await backend?.stop();
    dir.remove();
  });

  async function newContext(options: Parameters<Browser["newContext"]>[0] = {}): Promise<BrowserContext> {
    const context = await browser.newContext(options);
    context.on("request", (request) => requested.push(request.url()));
    context.on("response", (response) => {
      // The browser's own favicon guess is the app's business (no such file in the test app).
      if (response.status() >= 400 && !response.url().endsWith("/favicon.ico")) failedLoads.push(`${response.status()} ${response.url()}`);
    });
    context.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    return context;
  }

  async function signUpOnThePage(page: Page, email: string) {
    await page.goto(`${gw.url}/auth/sign-up`);
    await page.getByLabel("Name").fill("Ada Lovelace");
    await page.getByLabel("E-mail").fill(email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    // The account exists and the page holds its session once the app's page has loaded: a
    // context closed before that can cancel the form's POST (the user is then never created).
    await page.waitForURL(`${gw.url}/`);
  }

  async function signInOnThePage(page: Page, email: string, password = PASSWORD) {
    await page.getByLabel("E-mail").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  const newEmail = () => `ada-${crypto.randomUUID().slice(0, 8)}@example.test`;

  test("sign up on the page, land on the app, which shows what the backend read from its JWT; sign out", async () => {
    const context = await newContext();
    const page = await context.newPage();
    const email = newEmail();
    await signUpOnThePage(page, email);
    await page.waitForSelector('#who[data-status="200"]');
    expect(await page.textContent("#who")).toStartWith(`signed in as ${email} (`);
    const call = backend.received.findLast((record) => record.target === "/api/whoami");
    expect(call?.claims).toMatchObject({ email, name: "Ada Lovelace", iss: gw.url, aud: gw.url });
    expect(await page.textContent("#who")).toContain(String(call?.claims?.sub));

    // Sign out from the account page: the sign-in page, and the app is closed again.
    await page.getByRole("link", { name: "Your account" }).click();
    await page.waitForURL(`${gw.url}/auth/account`);
    await page.locator("form.sign-out").getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${gw.url}/auth/sign-in?notice=signed-out`);
    expect(await page.getByRole("status").textContent()).toBe("You are signed out.");
    const again = await page.goto(`${gw.url}/`);
    expect(new URL(again!.url()).pathname).toBe("/auth/sign-in");
    await context.close();
  }, 60_000);

  test("a protected deep link goes through the sign-in page and back to itself", async () => {
    const email = newEmail();
    const setup = await newContext();
    await signUpOnThePage(await setup.newPage(), email);
    await setup.close();

    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${gw.url}/reports/2026?tab=costs`);
    expect(page.url()).toBe(`${gw.url}/auth/sign-in?redirect=${encodeURIComponent("/reports/2026?tab=costs")}`);
    await signInOnThePage(page, email);
    await page.waitForURL(`${gw.url}/reports/2026?tab=costs`);
    expect(await page.textContent("#route")).toBe("/reports/2026?tab=costs");
    await page.waitForSelector('#who[data-status="200"]');
    await context.close();
  }, 60_000);

  test("?redirect=//evil.example lands on / after signing in", async () => {
    const email = newEmail();
    const setup = await newContext();
    await signUpOnThePage(await setup.newPage(), email);
    await setup.close();
    for (const evil of ["//evil.example", "/\\evil.example", "https://evil.example/"]) {
      const context = await newContext();
      const page = await context.newPage();
      await page.goto(`${gw.url}/auth/sign-in?redirect=${encodeURIComponent(evil)}`);
      await signInOnThePage(page, email);
      await page.waitForURL(`${gw.url}/`);
      expect(new URL(page.url()).origin).toBe(gw.url);
      await context.close();
    }
  }, 60_000);

  test("a wrong password is a readable message in the alert, focused, and the e-mail is kept", async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${gw.url}/auth/sign-in`);
    await signInOnThePage(page, "nobody@example.test", "wrong password here");
    const alert = page.getByRole("alert");
    await expect(alert).toBeDefined();
    await page.waitForSelector('[role="alert"]:not([hidden])');
    expect(await alert.textContent()).toBe("That e-mail and password do not match an account.");
    expect(await page.evaluate('document.activeElement?.getAttribute("role")')).toBe("alert");
    expect(await page.getByLabel("E-mail").inputValue()).toBe("nobody@example.test");
    expect(page.url()).toBe(`${gw.url}/auth/sign-in`);
    await context.close();
  }, 60_000);

  test("the account page lists both sessions of a user and signs one out", async () => {
    const email = newEmail();
    const first = await newContext({ userAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36" });
    const firstPage = await first.newPage();
    await signUpOnThePage(firstPage, email);
    const second = await newContext({ userAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0" });
    const secondPage = await second.newPage();
    await secondPage.goto(`${gw.url}/auth/sign-in`);
    await signInOnThePage(secondPage, email);
    await secondPage.waitForURL(`${gw.url}/`);

    await firstPage.goto(`${gw.url}/auth/account`);
    const sessions = firstPage.locator("[data-session-id]");
    expect(await sessions.count()).toBe(2);
    const other = sessions.filter({ hasText: "Firefox on Windows" });
    expect(await other.count()).toBe(1);
    expect(await sessions.filter({ hasText: "this device" }).textContent()).toContain("Chrome on Linux");
    const otherId = await other.getAttribute("data-session-id");
    await other.getByRole("button").click();
    await firstPage.waitForURL(`${gw.url}/auth/account?notice=session-revoked`);
    expect(await firstPage.locator("[data-session-id]").count()).toBe(1);
    expect(await firstPage.locator(`[data-session-id="${otherId}"]`).count()).toBe(0);

    // The other browser is signed out at once: its next navigation goes to the sign-in page.
    await secondPage.goto(`${gw.url}/`);
    expect(new URL(secondPage.url()).pathname).toBe("/auth/sign-in");
    await first.close();
    await second.close();
  }, 60_000);

  test("the keyboard alone signs in: focus starts in the e-mail field, Tab reaches the password, Enter submits", async () => {
    const email = newEmail();
    const setup = await newContext();
    await signUpOnThePage(await setup.newPage(), email);
    await setup.close();
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${gw.url}/auth/sign-in`);
    expect(await page.evaluate("document.activeElement?.name")).toBe("email");
    await page.keyboard.type(email);
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.name")).toBe("password");
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Sign in");
    await page.keyboard.press("Enter");
    await page.waitForURL(`${gw.url}/`);
    await page.waitForSelector('#who[data-status="200"]');
    await context.close();
  }, 60_000);

  test("with JavaScript off, the forms still work as plain posts", async () => {
    const email = newEmail();
    const context = await newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${gw.url}/auth/sign-in`);
    await signInOnThePage(page, email, "not an account");
    await page.waitForLoadState();
    expect(await page.getByRole("alert").textContent()).toBe("That e-mail and password do not match an account.");
    await signUpOnThePage(page, email);
    expect(await page.title()).toBe("App");
    await context.close();
  }, 60_000);

  test("every page labels its fields and loads nothing from another origin; screenshots light and dark", async () => {
    const email = newEmail();
    const context = await newContext({ viewport: { width: 520, height: 760 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    await signUpOnThePage(page, email);
    for (const path of ["/auth/sign-in?redirect=/x", "/auth/sign-up", "/auth/forgot-password", "/auth/reset-password?token=t", "/auth/verify-email", "/auth/account"]) {
      await page.goto(`${gw.url}${path}`);
      // Signed in, the sign-in page moves on: the others are looked at as they are.
      if (path.startsWith("/auth/sign-in")) continue;
      // Inputs a person fills in and buttons they press: each has a label (the DOM's own notion).
      const unlabelled = await page.evaluate(`[...document.querySelectorAll("input:not([type=hidden]):not([hidden]), button")]
        .filter((element) => element.tagName === "BUTTON"
          ? !element.textContent.trim() && !element.getAttribute("aria-label")
          : element.labels.length === 0 && !element.getAttribute("aria-label"))
        .map((element) => element.outerHTML)`);
      expect({ path, unlabelled }).toEqual({ path, unlabelled: [] });
      expect(await page.locator("h1").count()).toBe(1);
    }
    await page.goto(`${gw.url}/auth/account`);
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.goto(`${gw.url}/auth/account`);
      await page.screenshot({ path: join(shots, `account-${scheme}.png`), fullPage: true });
    }
    const signedOut = await newContext({ viewport: { width: 520, height: 640 }, deviceScaleFactor: 1 });
    const signInPage = await signedOut.newPage();
    for (const scheme of ["light", "dark"] as const) {
      await signInPage.emulateMedia({ colorScheme: scheme });
      await signInPage.goto(`${gw.url}/auth/sign-in`);
      await signInPage.screenshot({ path: join(shots, `sign-in-${scheme}.png`) });
    }
    // A wide window too: the card stays a readable column, centred, not stretched.
    const wide = await newContext({ viewport: { width: 1280, height: 720 }, deviceScaleFactor: 1 });
    const widePage = await wide.newPage();
    for (const scheme of ["light", "dark"] as const) {
      await widePage.emulateMedia({ colorScheme: scheme });
      await widePage.goto(`${gw.url}/auth/sign-in?error=BANNED_USER`);
      const card = (await widePage.locator("main, .card").first().boundingBox())!;
      expect(card.width).toBeLessThan(640);
      expect(Math.abs(card.x + card.width / 2 - 640)).toBeLessThan(2);
      await widePage.screenshot({ path: join(shots, `sign-in-wide-${scheme}.png`) });
    }
    await wide.close();
    for (const name of ["account-light", "account-dark", "sign-in-light", "sign-in-dark", "sign-in-wide-light", "sign-in-wide-dark"]) expect(statSync(join(shots, `${name}.png`)).size).toBeGreaterThan(5000);
    // The dark scheme is the stylesheet's own: the two screenshots differ.
    expect(Bun.hash(await Bun.file(join(shots, "sign-in-light.png")).arrayBuffer())).not.toBe(Bun.hash(await Bun.file(join(shots, "sign-in-dark.png")).arrayBuffer()));
    await context.close();
    await signedOut.close();

    // Across every test of this file: only the gateway was asked for anything, and no CSP
    // violation or script error reached the console.
    expect(requested.length).toBeGreaterThan(20);
    expect(requested.filter((url) => !url.startsWith(`${gw.url}/`))).toEqual([]);
    expect(consoleErrors.filter((text) => !text.startsWith("Failed to load resource"))).toEqual([]);
    expect(failedLoads.filter((load) => !load.endsWith("/auth/sign-in") && !load.endsWith("/api/whoami"))).toEqual([]);
  }, 60_000);
});
