import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { startBackend, type TestBackend } from "./helpers/backend";
import { startGateway, tempDir, type RunningGateway } from "./helpers/gateway";

/**
 * CORS_ORIGINS in a real browser (Debian's Chromium, driven by playwright-core): a front-end
 * served from another origin than the gateway's signs up with Better Auth and calls the API
 * with `credentials: "include"`. Its custom header makes Chromium send a preflight first, which
 * the gateway answers itself. The pages are on 127.0.0.1 like the gateway, on other ports:
 * other origins, but the same site, so the session cookie (SameSite=Lax) is the front-end's
 * first-party cookie and goes with its requests. A page on a third, unlisted port has that
 * cookie too, and only CORS stands between it and the API.
 */

const CHROMIUM = "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available) console.warn(`${CHROMIUM} not found (apt-get install chromium): the browser test is skipped`);

/** The front-end's script, loaded from its own origin: it talks to the gateway named in `?gateway=`. */
const APP_JS = `
const gateway = new URL(location.href).searchParams.get("gateway");
async function settle(request) {
  try {
    const response = await request;
    return { status: response.status, body: await response.json() };
  } catch (error) {
    return { error: error.name };
  }
}
window.signUp = (email) =>
  settle(fetch(gateway + "/api/auth/sign-up/email", {
    method: "POST",
    credentials: "include",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: "correct horse battery", name: "Cross Origin" }),
  }));
window.callApi = () => settle(fetch(gateway + "/api/x", { credentials: "include", headers: { "x-custom": "1" } }));
`;

const INDEX_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Front-end</title><script src="/app.js"></script></head>
<body><p>a front-end on another origin</p></body></html>`;

/** A static front-end on its own loopback port. */
function startFrontEnd() {
  return Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request) {
      const { pathname } = new URL(request.url);
      if (pathname === "/app.js") return new Response(APP_JS, { headers: { "content-type": "text/javascript" } });
      return new Response(INDEX_HTML, { headers: { "content-type": "text/html; charset=utf-8" } });
    },
  });
}

interface Settled {
  status?: number;
  body?: Record<string, unknown>;
  error?: string;
}

describe.skipIf(!available)("a front-end on another origin, in Chromium", () => {
  let backend: TestBackend;
  let gw: RunningGateway;
  let browser: Browser;
  let listed: ReturnType<typeof startFrontEnd>;
  let unlisted: ReturnType<typeof startFrontEnd>;
  const dir = tempDir();

  beforeAll(async () => {
    backend = startBackend();
    listed = startFrontEnd();
    unlisted = startFrontEnd();
    gw = await startGateway({ BACKEND_API_URL: backend.url, CORS_ORIGINS: listed.url.origin }, dir.path);
    backend.trustGateway(gw.url, gw.url);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.stop();
    await backend?.stop();
    await listed?.stop(true);
    await unlisted?.stop(true);
    dir.remove();
  });

  /** The gateway's access-log lines for `method path`, as "METHOD status". */
  function answersTo(method: string, path: string): number[] {
    return gw.logLines
      .map((line) => JSON.parse(line) as { msg: string; method?: string; path?: string; status?: number })
      .filter((line) => line.msg === "request" && line.method === method && line.path === path)
      .map((line) => line.status!);
  }

  test("a listed origin signs up and calls the API with the cookie; an unlisted one holding the same cookie cannot", async () => {
    const context = await browser.newContext();
    const email = `cors-browser-${crypto.randomUUID()}@example.test`;

    const app = await context.newPage();
    await app.goto(`${listed.url.origin}/?gateway=${encodeURIComponent(gw.url)}`);
    const signedUp = (await app.evaluate(`signUp(${JSON.stringify(email)})`)) as Settled;
    expect(signedUp).toMatchObject({ status: 200, body: { user: { email } } });
    // The cookie is the gateway's, HttpOnly, and first-party for both origins (one site).
    const cookies = await context.cookies(gw.url);
    expect(cookies.find((cookie) => cookie.name === "better-auth.session_token")).toMatchObject({ httpOnly: true, sameSite: "Lax" });

    const before = backend.received.length;
    const called = (await app.evaluate("callApi()")) as Settled;
    expect(called).toMatchObject({ status: 200, body: { method: "GET", target: "/api/x" } });
    const reached = backend.received.slice(before);
    expect(reached.map((request) => request.method)).toEqual(["GET"]);
    expect(reached[0]!.jwtError).toBeUndefined();
    expect(reached[0]!.claims).toMatchObject({ email });
    expect(reached[0]!.headers.get("x-custom")).toBe("1");
    // Chromium asked first, and the gateway answered: the preflight never reached the backend.
    expect(answersTo("OPTIONS", "/api/x")).toEqual([204]);

    const foreign = await context.newPage();
    await foreign.goto(`${unlisted.url.origin}/?gateway=${encodeURIComponent(gw.url)}`);
    const beforeForeign = backend.received.length;
    const refused = (await foreign.evaluate("callApi()")) as Settled;
    expect(refused).toEqual({ error: "TypeError" });
    expect(backend.received.length).toBe(beforeForeign);
    expect(answersTo("OPTIONS", "/api/x")).toEqual([204, 403]);
    await context.close();
  });
});
