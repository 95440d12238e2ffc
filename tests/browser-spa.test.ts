import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { startBackend, type TestBackend } from "./helpers/backend";
import { startGateway, tempDir, type RunningGateway } from "./helpers/gateway";

/**
 * The point of the route table, in a real browser (Debian's Chromium, driven by
 * playwright-core): a built single-page app and its API on one origin. The app is served from
 * STATIC_DIR, a deep link lands on it (SPA fallback), it signs up with Better Auth, and its
 * plain `fetch("/api/…")` then carries the session cookie, which JavaScript cannot read; the
 * backend gets a JWT instead. No CORS, no token in the page.
 */

const CHROMIUM = "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available) console.warn(`${CHROMIUM} not found (apt-get install chromium): the browser test is skipped`);

const APP_JS = `
const out = document.getElementById("out");
async function whoAmI() {
  const response = await fetch("/api/me");
  out.textContent = response.status === 200 ? "signed in: " + (await response.json()).target : "signed out (" + response.status + ")";
  out.dataset.status = String(response.status);
}
document.getElementById("sign-up").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/api/auth/sign-up/email", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: form.get("email"), password: form.get("password"), name: "Browser" }),
  });
  document.getElementById("result").textContent = response.ok ? "account created" : "sign-up failed";
  await whoAmI();
});
document.getElementById("route").textContent = location.pathname;
whoAmI();
`;

const INDEX_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SPA</title><script type="module" src="/assets/app-9f8e7d6c.js"></script></head>
<body>
  <p>route: <span id="route"></span></p>
  <p id="out" data-status="">…</p>
  <form id="sign-up">
    <label>E-mail <input name="email" type="email"></label>
    <label>Password <input name="password" type="password"></label>
    <button type="submit">Sign up</button>
  </form>
  <p id="result"></p>
</body></html>`;

describe.skipIf(!available)("a single-page app and its API on one origin, in Chromium", () => {
  let backend: TestBackend;
  let gw: RunningGateway;
  let browser: Browser;
  const dir = tempDir();

  beforeAll(async () => {
    backend = startBackend();
    const dist = join(dir.path, "dist");
    mkdirSync(join(dist, "assets"), { recursive: true });
    writeFileSync(join(dist, "index.html"), INDEX_HTML);
    writeFileSync(join(dist, "assets", "app-9f8e7d6c.js"), APP_JS);
    gw = await startGateway({ BACKEND_API_URL: backend.url, STATIC_DIR: dist }, dir.path);
    backend.trustGateway(gw.url, gw.url);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.stop();
    await backend?.stop();
    dir.remove();
  });

  test("a deep link loads the app, which signs up and calls the API with the session cookie it cannot read", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const failed: string[] = [];
    page.on("requestfailed", (request) => failed.push(request.url()));

    // A client-side route: no such file, so the SPA's index.html, and its script runs.
    const landing = await page.goto(`${gw.url}/settings/profile`);
    expect(landing?.status()).toBe(200);
    expect(await page.textContent("#route")).toBe("/settings/profile");
    await page.waitForSelector('#out[data-status="401"]');
    expect(await page.textContent("#out")).toBe("signed out (401)");

    const email = `browser-${crypto.randomUUID()}@example.test`;
    await page.fill('input[name="email"]', email);
    await page.fill('input[name="password"]', "correct horse battery");
    await page.click('button[type="submit"]');
    await page.waitForSelector('#out[data-status="200"]');
    expect(await page.textContent("#result")).toBe("account created");
    expect(await page.textContent("#out")).toBe("signed in: /api/me");

    // The backend got a JWT for this user, and neither the cookie nor a token reached the page's JavaScript.
    const call = backend.received.findLast((record) => record.target === "/api/me");
    expect(call?.jwtError).toBeUndefined();
    expect(call?.claims).toMatchObject({ email });
    expect(call?.headers.get("cookie") ?? "").not.toContain("better-auth");
    expect(await page.evaluate("document.cookie")).not.toContain("better-auth");
    const cookies = await context.cookies(gw.url);
    expect(cookies.find((cookie) => cookie.name === "better-auth.session_token")).toMatchObject({ httpOnly: true, sameSite: "Lax" });

    // A reload keeps the session: the cookie is the browser's, on the app's own origin.
    await page.reload();
    await page.waitForSelector('#out[data-status="200"]');
    expect(failed).toEqual([]);
    await context.close();
  });

  test("the app's assets come with the cache rules a CDN would give them", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const responses = new Map<string, Record<string, string>>();
    page.on("response", (response) => responses.set(new URL(response.url()).pathname, response.headers()));
    await page.goto(`${gw.url}/`);
    await page.waitForSelector('#out[data-status="401"]');
    expect(responses.get("/")?.["cache-control"]).toBe("no-cache");
    expect(responses.get("/assets/app-9f8e7d6c.js")?.["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(responses.get("/assets/app-9f8e7d6c.js")?.["content-type"]).toStartWith("text/javascript");
    await context.close();
  });
});
