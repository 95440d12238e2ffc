import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { startBackend, type TestBackend } from "./helpers/backend";
import { freePort, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";
import { startOidcProvider, type TestOidcProvider } from "./helpers/oidc";

/**
 * Sign-in through OpenID Connect providers, in a real browser against real providers on
 * loopback (oidc-provider): the code + PKCE flow creates the user and the backend gets the
 * same kind of JWT as for a password sign-in; two providers at once; denied consent, a
 * tampered state and a provider that is down all end on the sign-in page with a message.
 */

const CHROMIUM = "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available) console.warn(`${CHROMIUM} not found (apt-get install chromium): the providers' browser test is skipped`);

const APP_JS = `
fetch("/api/whoami").then(async (response) => {
  const answer = response.ok ? await response.json() : null;
  const out = document.getElementById("who");
  out.textContent = answer && answer.claims ? "signed in as " + answer.claims.email : "no identity (" + response.status + ")";
  out.dataset.status = String(response.status);
});`;

describe.skipIf(!available)("OpenID Connect providers, in Chromium", () => {
  let backend: TestBackend;
  let gw: RunningGateway;
  let browser: Browser;
  let corp: TestOidcProvider;
  let partner: TestOidcProvider;
  const dir = tempDir();

  beforeAll(async () => {
    backend = startBackend();
    const port = freePort();
    const origin = `http://127.0.0.1:${port}`;
    corp = await startOidcProvider({
      clients: [{ clientId: "authgate-corp", clientSecret: "corp-secret-0123456789", redirectUris: [`${origin}/api/auth/callback/corp`] }],
      accounts: [
        { sub: "corp-1", email: "grace@corp.test", name: "Grace Hopper" },
        { sub: "corp-2", email: "denied@corp.test", name: "Never Created" },
      ],
    });
    partner = await startOidcProvider({
      clients: [{ clientId: "authgate-partner", clientSecret: "partner-secret-0123456789", redirectUris: [`${origin}/api/auth/callback/partner`] }],
      accounts: [{ sub: "p-1", email: "katherine@partner.test", name: "Katherine Johnson" }],
    });
    const dist = join(dir.path, "dist");
    mkdirSync(join(dist, "assets"), { recursive: true });
    writeFileSync(join(dist, "index.html"), `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>App</title><script type="module" src="/assets/app-5e6f7a8b.js"></script></head><body><p id="who" data-status=""></p></body></html>`);
    writeFileSync(join(dist, "assets", "app-5e6f7a8b.js"), APP_JS);
    const file = join(dir.path, "authgate.toml");
    writeFileSync(file, `[[routes]]\nname = "api"\npath = "/api"\nupstream = "${backend.url}"\n\n[[routes]]\nname = "app"\npath = "/"\nstatic = "./dist"\nspa = true\nauth = "required"\n`);
    gw = await startGateway(
      {
        PORT: String(port),
        BETTER_AUTH_URL: origin,
        CONFIG_FILE: file,
        OIDC_PROVIDERS: "corp,partner,down",
        OIDC_CORP_ISSUER: corp.issuer,
        OIDC_CORP_CLIENT_ID: "authgate-corp",
        OIDC_CORP_CLIENT_SECRET: "corp-secret-0123456789",
        OIDC_CORP_NAME: "Corp SSO",
        OIDC_PARTNER_ISSUER: partner.issuer,
        OIDC_PARTNER_CLIENT_ID: "authgate-partner",
        OIDC_PARTNER_CLIENT_SECRET: "partner-secret-0123456789",
        OIDC_PARTNER_NAME: "Partner",
        // Nobody listens there: a provider that is down.
        OIDC_DOWN_ISSUER: `http://127.0.0.1:${freePort()}`,
        OIDC_DOWN_CLIENT_ID: "x",
        OIDC_DOWN_CLIENT_SECRET: "y",
      },
      dir.path,
    );
    // The providers had to know the gateway's callback URLs before it started: its port was chosen here.
    gw.url = origin;
    backend.trustGateway(gw.url, gw.url);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.stop();
    await corp?.stop();
    await partner?.stop();
    await backend?.stop();
    dir.remove();
  });

  async function usersWithEmail(email: string): Promise<number> {
    const rows = await gw.db.kysely.selectFrom("user").select("id").where("email", "=", email).execute();
    return rows.length;
  }

  /** At the provider's page: choose the account, then Continue or Cancel. */
  async function atProvider(page: Page, issuer: string, email: string, decision: "Continue" | "Cancel") {
    await page.waitForURL((url) => url.href.startsWith(`${issuer}/interaction/`), { timeout: 8000 }).catch(async (error) => {
      throw new Error(`not at the provider: ${gw.logLines.filter((line) => line.includes("provider") || line.includes("better-auth")).join("\n")} ${page.url()} ${(await page.content()).slice(0, 600)}`, { cause: error });
    });
    await page.getByLabel("Account").selectOption({ label: email });
    await page.getByRole("button", { name: decision }).click();
  }

  test("sign in with a provider: code + PKCE, the user is created, the backend gets its JWT, the deep link is kept", async () => {
    expect(await usersWithEmail("grace@corp.test")).toBe(0);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gw.url}/reports?q=1`);
    expect(new URL(page.url()).pathname).toBe("/auth/sign-in");
    const button = page.locator('[data-provider="corp"]');
    expect(await button.textContent()).toBe("Continue with Corp SSO");
    await button.click();
    await atProvider(page, corp.issuer, "grace@corp.test", "Continue");
    await page.waitForURL(`${gw.url}/reports?q=1`);
    await page.waitForSelector('#who[data-status="200"]');
    expect(await page.textContent("#who")).toBe("signed in as grace@corp.test");

    // What the provider was asked: the code flow with PKCE (S256), a state and a nonce.
    const asked = corp.authorizationRequests.at(-1)!;
    expect(asked.get("response_type")).toBe("code");
    expect(asked.get("code_challenge_method")).toBe("S256");
    expect(asked.get("code_challenge")?.length).toBeGreaterThan(40);
    expect(asked.get("state")?.length).toBeGreaterThan(10);
    expect(asked.get("nonce")?.length).toBeGreaterThan(10);
    expect(asked.get("redirect_uri")).toBe(`${gw.url}/api/auth/callback/corp`);

    const call = backend.received.findLast((record) => record.target === "/api/whoami");
    expect(call?.claims).toMatchObject({ email: "grace@corp.test", email_verified: true, name: "Grace Hopper", iss: gw.url, aud: gw.url });
    expect(await usersWithEmail("grace@corp.test")).toBe(1);

    // The account page shows the provider as linked.
    await page.goto(`${gw.url}/auth/account`);
    expect(await page.locator('li[data-provider="corp"]').getByRole("button", { name: "Unlink Corp SSO" }).count()).toBe(1);
    await context.close();
  }, 60_000);

  test("a second provider configured at the same time works too", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gw.url}/auth/sign-in`);
    await page.locator('[data-provider="partner"]').click();
    await atProvider(page, partner.issuer, "katherine@partner.test", "Continue");
    await page.waitForURL(`${gw.url}/`);
    await page.waitForSelector('#who[data-status="200"]');
    expect(await page.textContent("#who")).toBe("signed in as katherine@partner.test");
    await context.close();
  }, 60_000);

  test("denied consent ends on the sign-in page with a message, and nobody is created", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gw.url}/auth/sign-in?redirect=/after`);
    await page.locator('[data-provider="corp"]').click();
    await atProvider(page, corp.issuer, "denied@corp.test", "Cancel");
    await page.waitForURL((url) => url.pathname === "/auth/sign-in" && url.searchParams.get("error") === "access_denied");
    expect(await page.getByRole("alert").textContent()).toBe("Sign-in was cancelled at the provider. Try again, or choose another way to sign in.");
    // The way back is kept for a second try.
    expect(new URL(page.url()).searchParams.get("redirect")).toBe("/after");
    expect(await usersWithEmail("denied@corp.test")).toBe(0);
    await context.close();
  }, 60_000);

  test("a tampered state ends on the sign-in page with a message, and nobody is created", async () => {
    // A provider's real redirect back, with its state changed: the browser's cookies from the
    // start of the flow are there, the code is real, only the state is not the one issued.
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gw.url}/auth/sign-in`);
    const start = await fetch(`${gw.url}/auth/sign-in/provider/corp`, { redirect: "manual" });
    expect(start.status).toBe(302);
    const issued = new URL(start.headers.get("location")!);
    expect(issued.origin).toBe(corp.issuer);
    const answer = await fetch(`${gw.url}/api/auth/callback/corp?code=forged-code&state=${issued.searchParams.get("state")}x`, {
      redirect: "manual",
      headers: { cookie: start.headers.getSetCookie().map((cookie) => cookie.split(";")[0]).join("; ") },
    });
    expect(answer.status).toBe(302);
    const landing = new URL(answer.headers.get("location")!, gw.url);
    expect(landing.pathname).toBe("/auth/sign-in");
    expect(landing.searchParams.get("error")).toBeTruthy();
    await page.goto(landing.href);
    expect(await page.getByRole("alert").textContent()).toStartWith("That sign-in attempt could not be checked");
    expect(await usersWithEmail("denied@corp.test")).toBe(0);
    await context.close();
  }, 60_000);

  test("a provider that is down ends on the sign-in page with a message; the others keep working", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gw.url}/auth/sign-in`);
    await page.locator('[data-provider="down"]').click();
    await page.waitForURL((url) => url.pathname === "/auth/sign-in" && url.searchParams.get("error") === "PROVIDER_UNAVAILABLE");
    expect(await page.getByRole("alert").textContent()).toBe("The sign-in provider could not be reached. Please try again later.");
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    await context.close();
  }, 60_000);
});
