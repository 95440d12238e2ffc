import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { createServer, type Plugin, type ViteDevServer } from "vite";
import { startBackend, type TestBackend } from "./helpers/backend";
import { Feed } from "./helpers/feed";
import { signUp, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";
import { rawHttp } from "./helpers/raw-http";

/**
 * A real Vite dev server behind FRONTEND_URL, configured as a user would (nothing
 * proxy-specific): pages, transformed modules and Vite's client through the gateway's
 * origin, and HMR over the gateway's WebSocket relay exactly as /@vite/client connects.
 * What Vite saw is recorded by a plugin inside Vite (its own middleware and its HTTP
 * server's `upgrade` event), not mocked. Every wait is on an event, never a sleep.
 */

/** One request as Vite's own HTTP server received it. */
interface SeenByVite {
  kind: "http" | "upgrade";
  url: string;
  headers: IncomingHttpHeaders;
}

const MAIN_JS = [
  `import { message } from "./message.js";`,
  `export const shown = message;`,
  // Accepting the dependency makes an edit of message.js an `update` (not a full reload).
  `if (import.meta.hot) import.meta.hot.accept("./message.js", () => {});`,
  ``,
].join("\n");

let dir: ReturnType<typeof tempDir>;
let vite: ViteDevServer;
let viteUrl: string;
let watcherReady: Promise<void>;
const seen = new Feed<SeenByVite>();
let backend: TestBackend;
let gw: RunningGateway;
let cookie: string;
let user: { id: string; email: string };

/** Records what reached Vite: every HTTP request (before Vite's middlewares) and every upgrade. */
function recorder(): Plugin {
  return {
    name: "authgate-test-recorder",
    configureServer(server) {
      // The watcher's initial scan may end before this hook runs (Vite awaits its environments
      // in between): chokidar's `_readyEmitted` says so; otherwise its "ready" event is ahead.
      const watcher = server.watcher as typeof server.watcher & { _readyEmitted?: boolean };
      watcherReady = watcher._readyEmitted
        ? Promise.resolve()
        : new Promise((resolve) => watcher.once("ready", () => resolve()));
      server.middlewares.use((req, _res, next) => {
        seen.push({ kind: "http", url: req.url ?? "", headers: { ...req.headers } });
        next();
      });
      server.httpServer?.on("upgrade", (req) => {
        seen.push({ kind: "upgrade", url: req.url ?? "", headers: { ...req.headers } });
      });
    },
  };
}

/** What Vite saw of the request the gateway forwarded with this X-Request-Id. */
function seenWith(requestId: string, kind: SeenByVite["kind"] = "http"): Promise<SeenByVite> {
  return seen.next((s) => s.kind === kind && s.headers["x-request-id"] === requestId);
}

function requestId(): string {
  return `fe-${crypto.randomUUID()}`;
}

beforeAll(async () => {
  dir = tempDir();
  const root = join(dir.path, "app");
  mkdirSync(join(root, "src"), { recursive: true });
  writeFileSync(
    join(root, "index.html"),
    `<!doctype html>\n<html><head><title>authgate dev</title></head><body><div id="app"></div><script type="module" src="/src/main.js"></script></body></html>\n`,
  );
  writeFileSync(join(root, "src", "main.js"), MAIN_JS);
  writeFileSync(join(root, "src", "message.js"), `export const message = "hello from vite";\n`);

  vite = await createServer({
    root,
    configFile: false,
    envFile: false,
    cacheDir: join(dir.path, "vite-cache"),
    logLevel: "silent",
    clearScreen: false,
    // What a user's vite.config would say for a dev server on loopback; nothing about the gateway.
    server: { port: 0, host: "127.0.0.1", strictPort: true },
    plugins: [recorder()],
  });
  await vite.listen();
  const address = vite.httpServer!.address();
  if (address === null || typeof address === "string") throw new Error("Vite is not listening on a TCP port");
  viteUrl = `http://127.0.0.1:${address.port}`;

  backend = startBackend();
  gw = await startGateway({ FRONTEND_URL: viteUrl, BACKEND_API_URL: backend.url }, dir.path);
  backend.trustGateway(gw.url, gw.url);
  ({ cookie, user } = await signUp(gw.url));
});

afterAll(async () => {
  await gw?.stop();
  await backend?.stop();
  await vite?.close();
  dir?.remove();
});

describe("Vite's pages and modules through the gateway's origin", () => {
  test("GET / is Vite's transformed index.html; no Authorization and no Better Auth cookie reach Vite", async () => {
    const id = requestId();
    const response = await fetch(gw.url + "/", {
      headers: { cookie: `${cookie}; theme=dark`, authorization: "Bearer forged-by-the-client", "x-request-id": id },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/html");
    const html = await response.text();
    expect(html).toContain(`<script type="module" src="/@vite/client"></script>`);
    expect(html).toContain(`src="/src/main.js"`);

    const atVite = await seenWith(id);
    expect(atVite.url).toBe("/");
    expect(atVite.headers.authorization).toBeUndefined();
    expect(atVite.headers.cookie).toBe("theme=dark");
    expect(atVite.headers.cookie ?? "").not.toContain("better-auth");
    expect(atVite.headers.cookie ?? "").not.toContain(cookie.split("=")[1]!);
    // Vite is addressed as itself: its Host is its own, the client's goes in X-Forwarded-Host.
    expect(atVite.headers.host).toBe(new URL(viteUrl).host);
    expect(atVite.headers["x-forwarded-host"]).toBe(new URL(gw.url).host);
  });

  test("an anonymous visitor gets the page too (the frontend route is auth = none)", async () => {
    const response = await fetch(gw.url + "/");
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("/@vite/client");
  });

  test("GET /src/main.js is JavaScript transformed by Vite", async () => {
    const response = await fetch(gw.url + "/src/main.js");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/javascript/);
    const code = await response.text();
    // The bare relative import is rewritten to the module's dev URL, and HMR is wired in.
    expect(code).toMatch(/import \{ message \} from "\/src\/message\.js(\?[^"]*)?"/);
    expect(code).toContain("/@vite/client");
    expect(code).toContain(`__vite__createHotContext("/src/main.js")`);
    // So is the module it imports.
    const message = await fetch(gw.url + "/src/message.js");
    expect(message.status).toBe(200);
    expect(await message.text()).toContain("export const message");
  });

  test("GET /@vite/client works and points HMR at the page's own host and port (the gateway's)", async () => {
    const response = await fetch(gw.url + "/@vite/client");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/javascript/);
    const client = await response.text();
    const hmr = hmrSocketOf(client);
    // No hmr.clientPort/host configured: the socket goes where /@vite/client came from.
    expect(hmr.port).toBeNull();
    expect(hmr.hostname).toBeNull();
    expect(hmr.base).toBe("/");
    expect(hmr.token).toMatch(/^[\w-]{8,}$/);
  });

  test("a public Host the dev server never heard of needs no server.allowedHosts", async () => {
    // The gateway's public name (say dev.example.test behind a TLS terminator) is not Vite's:
    // Vite would answer 403 "Blocked request" if that Host reached it.
    const id = requestId();
    const port = Number(new URL(gw.url).port);
    const response = await rawHttp(
      port,
      [`GET / HTTP/1.1`, `Host: dev.example.test`, `X-Request-Id: ${id}`, `Connection: close`, "", ""].join("\r\n"),
    );
    expect(response.status).toBe(200);
    expect(response.text).toContain("/@vite/client");
    const atVite = await seenWith(id);
    expect(atVite.headers.host).toBe(new URL(viteUrl).host);
    expect(atVite.headers["x-forwarded-host"]).toBe("dev.example.test");

    // The control: that Host sent to Vite itself is refused, so it is the gateway that spares the setting.
    const direct = await rawHttp(
      Number(new URL(viteUrl).port),
      [`GET / HTTP/1.1`, `Host: dev.example.test`, `Connection: close`, "", ""].join("\r\n"),
    );
    expect(direct.status).toBe(403);
    expect(direct.text).toContain("Blocked request");
  });
});

describe("the gateway's own paths and the API next to the frontend", () => {
  test("/api/x goes to the API backend with a verified JWT, not to Vite", async () => {
    const id = requestId();
    const response = await fetch(gw.url + "/api/x", { headers: { cookie, "x-request-id": id } });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-backend")).toBe("yes");
    const atBackend = backend.received.find((r) => r.headers.get("x-request-id") === id);
    expect(atBackend?.target).toBe("/api/x");
    expect(atBackend?.jwtError).toBeUndefined();
    expect(atBackend?.claims?.sub).toBe(user.id);
    expect(seen.items.some((s) => s.headers["x-request-id"] === id)).toBe(false);
  });

  test("/api/x without a session is refused by the gateway (the frontend's auth = none does not leak to /api)", async () => {
    const before = backend.received.length;
    const response = await fetch(gw.url + "/api/x");
    expect(response.status).toBe(401);
    expect(backend.received.length).toBe(before);
  });

  test("/healthz is the gateway's, not Vite's", async () => {
    const id = requestId();
    const response = await fetch(gw.url + "/healthz", { headers: { "x-request-id": id } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
    expect(seen.items.some((s) => s.headers["x-request-id"] === id)).toBe(false);
  });
});

/** Where /@vite/client connects its HMR socket, read from the client as Vite served it. */
function hmrSocketOf(client: string): { hostname: string | null; port: number | null; base: string; token: string } {
  const socketHost = /const socketHost = `\$\{(.*?) \|\| importMetaUrl\.hostname\}:\$\{hmrPort \|\| importMetaUrl\.port\}\$\{(.*?)\}`;/.exec(client);
  const port = /const hmrPort = (.*?);/.exec(client);
  const token = /const wsToken = (.*?);/.exec(client);
  if (!socketHost || !port || !token) throw new Error("unrecognised /@vite/client: where does it connect?");
  return {
    hostname: JSON.parse(socketHost[1]!),
    port: JSON.parse(port[1]!),
    base: JSON.parse(socketHost[2]!),
    token: JSON.parse(token[1]!),
  };
}

interface HmrClient {
  ws: WebSocket;
  requestId: string;
  opened: Promise<void>;
  messages: Feed<{ type: string; [key: string]: unknown }>;
  closed: Promise<CloseEvent>;
}

/**
 * Connects as /@vite/client does from a page at `pageUrl`: `ws://` + the page's host and
 * port + the HMR base, `?token=` the client's token, subprotocol `vite-hmr`; a browser
 * always sends the page's Origin.
 */
function connectHmr(pageUrl: string, path: string, protocol = "vite-hmr", extraHeaders: Record<string, string> = {}): HmrClient {
  const id = requestId();
  const ws = new WebSocket(pageUrl.replace(/^http/, "ws") + path, {
    headers: { origin: new URL(pageUrl).origin, "x-request-id": id, ...extraHeaders },
    protocols: [protocol],
  });
  const messages = new Feed<{ type: string; [key: string]: unknown }>();
  ws.addEventListener("message", (event) => messages.push(JSON.parse(String(event.data))));
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  const opened = new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error("WebSocket error before open")));
    ws.addEventListener("close", (event) => reject(new Error(`WebSocket closed before open: ${event.code}`)));
  });
  opened.catch(() => {});
  return { ws, requestId: id, opened, messages, closed };
}

async function hmrPath(): Promise<string> {
  const hmr = hmrSocketOf(await (await fetch(gw.url + "/@vite/client")).text());
  return `${hmr.base}?token=${hmr.token}`;
}

describe("HMR over the gateway's WebSocket relay", () => {
  test("Vite's client socket opens with subprotocol vite-hmr, gets `connected`, then an `update` when message.js changes", async () => {
    // The page's modules, as a browser loads them before HMR matters.
    expect((await fetch(gw.url + "/src/main.js")).status).toBe(200);
    expect((await fetch(gw.url + "/src/message.js")).status).toBe(200);

    const path = await hmrPath();
    const client = connectHmr(gw.url, path, "vite-hmr", { cookie: `${cookie}; theme=dark` });
    await client.opened;
    expect(client.ws.protocol).toBe("vite-hmr");
    expect(await client.messages.next()).toEqual({ type: "connected" });

    // Vite's side of the relayed socket: the path and token as sent, no gateway credentials.
    const atVite = await seenWith(client.requestId, "upgrade");
    expect(atVite.url).toBe(path);
    expect(atVite.headers["sec-websocket-protocol"]).toBe("vite-hmr");
    expect(atVite.headers.origin).toBe(gw.url);
    expect(atVite.headers.authorization).toBeUndefined();
    expect(atVite.headers.cookie).toBe("theme=dark");

    await watcherReady;
    writeFileSync(join(vite.config.root, "src", "message.js"), `export const message = "hello again";\n`);
    const update = await client.messages.next((m) => m.type === "update" || m.type === "full-reload");
    expect(update.type).toBe("update");
    const updates = update.updates as { type: string; path: string; acceptedPath: string }[];
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatchObject({ type: "js-update", path: "/src/main.js", acceptedPath: "/src/message.js" });

    // The edited module is what the gateway serves now.
    expect(await (await fetch(gw.url + "/src/message.js")).text()).toContain("hello again");

    client.ws.close(1000);
    await client.closed;
  });

  test("an edit of index.html reaches the client as `full-reload`", async () => {
    const client = connectHmr(gw.url, await hmrPath());
    await client.opened;
    expect(await client.messages.next()).toEqual({ type: "connected" });
    await watcherReady;
    writeFileSync(
      join(vite.config.root, "index.html"),
      `<!doctype html>\n<html><head><title>edited</title></head><body><script type="module" src="/src/main.js"></script></body></html>\n`,
    );
    const reload = await client.messages.next((m) => m.type === "full-reload");
    expect(reload.path).toBe("/index.html");
    client.ws.close(1000);
    await client.closed;
  });

  test("without the client's token Vite refuses the socket (its check sees the browser's Origin), and the gateway says 502", async () => {
    const client = connectHmr(gw.url, "/");
    await expect(client.opened).rejects.toThrow();
    const event = await client.closed;
    expect(event.code).not.toBe(1000);
    // The gateway did relay the attempt: Vite's HTTP server saw it, with the Origin.
    const atVite = await seenWith(client.requestId, "upgrade");
    expect(atVite.headers.origin).toBe(gw.url);
    expect(atVite.url).toBe("/");

    // The HTTP status of that refusal, asked with fetch: Vite's refusal is the gateway's 502.
    const id = requestId();
    const response = await fetch(gw.url + "/", {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64"),
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "vite-hmr",
        origin: gw.url,
        "x-request-id": id,
      },
    });
    expect(response.status).toBe(502);
    expect(await response.json()).toEqual({ error: "Backend unavailable" });
    await seenWith(id, "upgrade");
  });

  test("Vite's reconnect probe (subprotocol vite-ping) opens through the gateway", async () => {
    const client = connectHmr(gw.url, await hmrPath(), "vite-ping");
    await client.opened;
    expect(client.ws.protocol).toBe("vite-ping");
    // Vite answers a probe by closing at once, and that close is relayed as it was sent.
    const event = await client.closed;
    expect(event.code).toBe(1000);
  });
});
