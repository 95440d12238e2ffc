import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose";
import { startBackend, type TestBackend } from "./helpers/backend";
import { signUp, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";
import { Feed } from "./helpers/feed";
import { metricsOf, sample } from "./helpers/metrics";
import { rawHttp } from "./helpers/raw-http";

/**
 * The route table end to end, on real ports: two recording backends on several routes, every
 * auth mode, `allow`, strip_prefix and an upstream prefix, per-route audiences verified with
 * jose, identity headers, and a static SPA directory next to them.
 */

let api: TestBackend;
let billing: TestBackend;
let sockets: ReturnType<typeof startSocketBackend>;
let gw: RunningGateway;
const dir = tempDir();
let ada: { cookie: string; user: { id: string; email: string } };
let admin: { cookie: string; user: { id: string; email: string } };
let outsider: { cookie: string; user: { id: string; email: string } };
let member: { cookie: string; user: { id: string; email: string } };
let colleague: { cookie: string; user: { id: string; email: string } };
let unverifiedAdmin: { cookie: string; user: { id: string; email: string } };

const INDEX_HTML = "<!doctype html><title>app</title><div id=app></div>";

beforeAll(async () => {
  api = startBackend();
  billing = startBackend();
  sockets = startSocketBackend();
  mkdirSync(join(dir.path, "site", "dist", "assets"), { recursive: true });
  writeFileSync(join(dir.path, "site", "dist", "index.html"), INDEX_HTML);
  writeFileSync(join(dir.path, "site", "dist", "assets", "app-3f2a9c1b.js"), "console.log('app');".repeat(100));
  writeFileSync(join(dir.path, "site", "dist", "assets", "app-3f2a9c1b.js.gz"), Bun.gzipSync(new TextEncoder().encode("console.log('app');".repeat(100))));
  mkdirSync(join(dir.path, "site", "internal"), { recursive: true });
  writeFileSync(join(dir.path, "site", "internal", "index.html"), "<h1>internal</h1>");
  const file = join(dir.path, "site", "authgate.toml");
  writeFileSync(
    file,
    `
[[routes]]
name = "api"
path = "/api"
upstream = "${api.url}"

[[routes]]
name = "billing"
path = "/api/billing/"
upstream = "${billing.url}/v2"
strip_prefix = true
audience = "https://billing.internal"
identity_headers = true

[[routes]]
name = "public"
path = "/api/public"
upstream = "${api.url}"
auth = "none"

[[routes]]
name = "maybe"
path = "/api/maybe"
upstream = "${api.url}"
auth = "optional"

[[routes]]
name = "admin"
path = "/api/admin"
upstream = "${api.url}"
[routes.allow]
emails = ["ADA@example.com"]
email_domains = ["admins.test"]

[[routes]]
name = "verified"
path = "/api/verified"
upstream = "${api.url}"
allow = { email_verified = true }

[[routes]]
name = "small"
path = "/api/small"
upstream = "${api.url}"
max_body_bytes = 10

[[routes]]
name = "slow"
path = "/api/slow"
upstream = "${api.url}"
strip_prefix = true
timeout_ms = 300

[[routes]]
name = "ws-admin"
path = "/ws/admin"
upstream = "${sockets.url}"
allow = { emails = ["ada@example.com"] }

[[routes]]
name = "ws-maybe"
path = "/ws/maybe"
upstream = "${sockets.url}"
auth = "optional"

[[routes]]
name = "app"
path = "/"
static = "./dist"   # relative to this file
spa = true
auth = "none"

[[routes]]
name = "internal"
path = "/internal"
static = "./internal"
allow = { email_domains = ["example.test"] }
`,
  );
  gw = await startGateway({ CONFIG_FILE: file, METRICS_TOKEN: "metrics-secret-token" }, dir.path);
  api.trustGateway(gw.url, gw.url);
  billing.trustGateway(gw.url, gw.url, undefined, "https://billing.internal");
  ada = await signUp(gw.url, "ada@example.com");
  admin = await signUp(gw.url, "root@admins.test");
  outsider = await signUp(gw.url, "eve@sub.admins.test");
  member = await signUp(gw.url, `member-${crypto.randomUUID()}@example.test`);
  colleague = await signUp(gw.url, `colleague-${crypto.randomUUID()}@example.test`);
  unverifiedAdmin = await signUp(gw.url, "nobody@admins.test");
  // What a verification e-mail would do: before these sessions are first used (and cached).
  for (const { user } of [ada, admin, outsider, colleague]) await verify(user.id);
});

async function verify(userId: string) {
  await gw.db.kysely.updateTable("user").set({ emailVerified: 1 } as never).where("id", "=", userId).execute();
}

afterAll(async () => {
  await gw?.stop();
  await api?.stop();
  await billing?.stop();
  await sockets?.stop();
  dir.remove();
});

/** A WebSocket backend that records each handshake's Authorization and echoes frames. */
function startSocketBackend() {
  const handshakes = new Feed<{ path: string; authorization: string | null }>();
  const server = Bun.serve<undefined, never>({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request, srv) {
      handshakes.push({ path: new URL(request.url).pathname, authorization: request.headers.get("authorization") });
      return srv.upgrade(request, { data: undefined }) ? undefined : new Response("upgrade expected", { status: 426 });
    },
    websocket: { message: (ws, message) => void ws.send(message) },
  });
  return { url: `http://127.0.0.1:${server.port}`, handshakes, stop: () => server.stop(true) };
}

/** Opens a WebSocket through the gateway, sends one frame and resolves with its echo, or with the close code. */
function echoThrough(path: string, cookie?: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(gw.url.replace("http", "ws") + path, { headers: cookie ? { cookie, origin: gw.url } : { origin: gw.url } } as never);
    socket.onopen = () => socket.send("ping");
    socket.onmessage = (event) => {
      resolve(`echo ${event.data}`);
      socket.close();
    };
    socket.onclose = (event) => resolve(`closed ${event.code}`);
  });
}

/** The gateway's status for a WebSocket handshake (raw, so a refusal's status is visible). */
async function handshakeStatus(path: string, cookie: string): Promise<number> {
  const response = await rawHttp(
    Number(new URL(gw.url).port),
    [`GET ${path} HTTP/1.1`, `Host: ${new URL(gw.url).host}`, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", `Cookie: ${cookie}`, "Connection: close", "", ""].join("\r\n"),
  );
  return response.status;
}

/** The requests a backend received while `run` ran. */
async function receivedBy(backend: TestBackend, run: () => Promise<void>) {
  const before = backend.received.length;
  await run();
  return backend.received.slice(before);
}

describe("several upstreams", () => {
  test("/api/x reaches the api upstream as sent, with a JWT for the gateway's audience", async () => {
    const seen = await receivedBy(api, async () => {
      const response = await fetch(`${gw.url}/api/items/7?b=%2F&a=1`, { headers: { cookie: ada.cookie } });
      expect(response.status).toBe(200);
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.target).toBe("/api/items/7?b=%2F&a=1");
    expect(seen[0]!.jwtError).toBeUndefined();
    expect(seen[0]!.claims).toMatchObject({ sub: ada.user.id, email: "ada@example.com", aud: gw.url });
    expect(seen[0]!.headers.get("x-auth-request-user")).toBeNull();
  });

  test("/api/billing/x goes to the other upstream, its prefix stripped and the upstream's own added, the query byte for byte", async () => {
    const seen = await receivedBy(billing, async () => {
      expect((await fetch(`${gw.url}/api/billing/invoices/3?q=%E2%82%AC&&x`, { headers: { cookie: ada.cookie } })).status).toBe(200);
      expect((await fetch(`${gw.url}/api/billing`, { headers: { cookie: ada.cookie } })).status).toBe(200);
    });
    expect(seen.map((r) => r.target)).toEqual(["/v2/invoices/3?q=%E2%82%AC&&x", "/v2/"]);
  });

  test("each route's JWT carries its own audience: one upstream's token does not verify at the other", async () => {
    const toBilling = await receivedBy(billing, async () => void (await fetch(`${gw.url}/api/billing/x`, { headers: { cookie: ada.cookie } })));
    const toApi = await receivedBy(api, async () => void (await fetch(`${gw.url}/api/x`, { headers: { cookie: ada.cookie } })));
    expect(toBilling[0]!.jwtError).toBeUndefined();
    expect(toBilling[0]!.claims).toMatchObject({ sub: ada.user.id, aud: "https://billing.internal" });
    const jwks = createRemoteJWKSet(new URL("/api/auth/jwks", gw.url));
    const apiToken = toApi[0]!.headers.get("authorization")!.slice("Bearer ".length);
    const billingToken = toBilling[0]!.headers.get("authorization")!.slice("Bearer ".length);
    expect(apiToken).not.toBe(billingToken);
    // Same session, same key: only the audience tells them apart, and a backend checking it refuses the other's.
    expect(decodeJwt(apiToken).sid).toBe(decodeJwt(billingToken).sid);
    expect(jwtVerify(apiToken, jwks, { issuer: gw.url, audience: "https://billing.internal" })).rejects.toThrow();
    expect(jwtVerify(billingToken, jwks, { issuer: gw.url, audience: gw.url })).rejects.toThrow();
  });

  test("identity headers only where the route asks for them, and a client's are always dropped", async () => {
    const spoofed = { cookie: ada.cookie, "x-auth-request-user": "admin", "x-auth-request-email": "root@admins.test", "x-auth-request-groups": "admins", x_auth_request_user: "admin" };
    const toBilling = await receivedBy(billing, async () => void (await fetch(`${gw.url}/api/billing/me`, { headers: spoofed })));
    expect(toBilling[0]!.headers.get("x-auth-request-user")).toBe(ada.user.id);
    expect(toBilling[0]!.headers.get("x-auth-request-email")).toBe("ada@example.com");
    expect(toBilling[0]!.headers.get("x-auth-request-groups")).toBeNull();
    const toApi = await receivedBy(api, async () => void (await fetch(`${gw.url}/api/me`, { headers: spoofed })));
    for (const name of ["x-auth-request-user", "x-auth-request-email", "x-auth-request-groups", "x_auth_request_user"]) {
      expect(toApi[0]!.headers.get(name)).toBeNull();
    }
    const toPublic = await receivedBy(api, async () => void (await fetch(`${gw.url}/api/public/me`, { headers: spoofed })));
    expect(toPublic[0]!.headers.get("x-auth-request-user")).toBeNull();
  });

  test("a route's own max_body_bytes: 413 before the upstream is contacted; the next route's limit is the default", async () => {
    const seen = await receivedBy(api, async () => {
      const small = await fetch(`${gw.url}/api/small/upload`, { method: "POST", headers: { cookie: ada.cookie }, body: "x".repeat(11) });
      expect(small.status).toBe(413);
      expect(await small.json()).toEqual({ error: "Request body too large" });
      const fits = await fetch(`${gw.url}/api/small/upload`, { method: "POST", headers: { cookie: ada.cookie }, body: "x".repeat(10) });
      expect(fits.status).toBe(200);
      expect((await fetch(`${gw.url}/api/upload`, { method: "POST", headers: { cookie: ada.cookie }, body: "x".repeat(11) })).status).toBe(200);
    });
    expect(seen.map((r) => [r.target, r.bodyBytes])).toEqual([["/api/small/upload", 10], ["/api/upload", 11]]);
  });
});

test("a route's own timeout_ms: its backend gets 300 ms for its headers, then the client gets 504", async () => {
  const slow = await fetch(`${gw.url}/api/slow/slow-headers?ms=3000`, { headers: { cookie: ada.cookie } });
  expect(slow.status).toBe(504);
  expect(await slow.json()).toEqual({ error: "Backend did not answer in time" });
  // The same backend behind the default route (PROXY_TIMEOUT_MS, 30 s) answers.
  const patient = await fetch(`${gw.url}/api/slow-headers?ms=500`, { headers: { cookie: ada.cookie } });
  expect(patient.status).toBe(200);
  expect(await patient.text()).toBe("worth the wait");
});

describe("WebSockets follow the route's policy", () => {
  test("allow: the listed user's socket opens with a JWT; anyone else gets 403 and no backend socket", async () => {
    const before = sockets.handshakes.items.length;
    expect(await handshakeStatus("/ws/admin/feed", member.cookie)).toBe(403);
    expect(sockets.handshakes.items.length).toBe(before);
    expect(await echoThrough("/ws/admin/feed", ada.cookie)).toBe("echo ping");
    const seen = await sockets.handshakes.next((h) => h.path === "/ws/admin/feed");
    expect(seen.authorization).toStartWith("Bearer ");
  });

  test("required: a handshake without a session gets 401 and no backend socket", async () => {
    const before = sockets.handshakes.items.length;
    expect(await handshakeStatus("/ws/admin/feed", "theme=dark")).toBe(401);
    expect(sockets.handshakes.items.length).toBe(before);
  });

  test("optional: a socket without a session opens without Authorization", async () => {
    expect(await echoThrough("/ws/maybe/anon")).toBe("echo ping");
    const seen = await sockets.handshakes.next((h) => h.path === "/ws/maybe/anon");
    expect(seen.authorization).toBeNull();
  });
});

describe("auth modes", () => {
  test('"required": no session is a 401 and the upstream is not contacted', async () => {
    const seen = await receivedBy(api, async () => {
      const response = await fetch(`${gw.url}/api/items`);
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: "Authentication required" });
    });
    expect(seen).toHaveLength(0);
  });

  test('"none": never a JWT, never the session cookie, never the client\'s Authorization', async () => {
    const seen = await receivedBy(api, async () => {
      expect((await fetch(`${gw.url}/api/public/status`)).status).toBe(200);
      const withSession = await fetch(`${gw.url}/api/public/status`, {
        headers: { cookie: `${ada.cookie}; theme=dark`, authorization: "Bearer forged" },
      });
      expect(withSession.status).toBe(200);
    });
    expect(seen).toHaveLength(2);
    for (const record of seen) {
      expect(record.headers.get("authorization")).toBeNull();
      expect(record.headers.get("cookie") ?? "").not.toContain("better-auth");
    }
    expect(seen[1]!.headers.get("cookie")).toBe("theme=dark");
  });

  test('"none": a cross-site POST passes (no session is used there to ride on)', async () => {
    const seen = await receivedBy(api, async () => {
      const response = await fetch(`${gw.url}/api/public/form`, { method: "POST", headers: { origin: "https://evil.example", cookie: ada.cookie }, body: "x" });
      expect(response.status).toBe(200);
    });
    expect(seen[0]!.headers.get("authorization")).toBeNull();
  });

  test('"optional": a JWT with a session, none without one (or with an invalid one)', async () => {
    const seen = await receivedBy(api, async () => {
      expect((await fetch(`${gw.url}/api/maybe/feed`)).status).toBe(200);
      expect((await fetch(`${gw.url}/api/maybe/feed`, { headers: { cookie: "better-auth.session_token=forged.value" } })).status).toBe(200);
      expect((await fetch(`${gw.url}/api/maybe/feed`, { headers: { cookie: ada.cookie } })).status).toBe(200);
    });
    expect(seen.map((r) => r.headers.get("authorization") !== null)).toEqual([false, false, true]);
    expect(seen[2]!.claims).toMatchObject({ sub: ada.user.id });
    expect(seen[1]!.headers.get("cookie")).toBeNull();
  });

  test('"optional" and "required": a cross-site POST is refused with 403 before the upstream', async () => {
    const seen = await receivedBy(api, async () => {
      for (const path of ["/api/maybe/x", "/api/x"]) {
        const response = await fetch(gw.url + path, { method: "POST", headers: { origin: "https://evil.example", cookie: ada.cookie }, body: "x" });
        expect(response.status).toBe(403);
        expect(await response.json()).toEqual({ error: "Cross-origin request refused" });
      }
    });
    expect(seen).toHaveLength(0);
  });
});

describe("allow", () => {
  test.each([
    ["ada@example.com, listed (compared case-insensitively)", () => ada, 200],
    ["root@admins.test, by domain", () => admin, 200],
    ["eve@sub.admins.test: a subdomain is not the domain", () => outsider, 403],
    ["a member of example.test, neither listed nor of the domain", () => member, 403],
    ["nobody@admins.test, of the domain but not verified (required by default when addresses are named)", () => unverifiedAdmin, 403],
  ] as const)("%s → %d", async (_who, caller, status) => {
    const seen = await receivedBy(api, async () => {
      const response = await fetch(`${gw.url}/api/admin/users`, { headers: { cookie: caller().cookie } });
      expect(response.status).toBe(status);
      if (status === 403) expect(await response.json()).toEqual({ error: "Forbidden" });
    });
    expect(seen).toHaveLength(status === 200 ? 1 : 0);
  });

  test("without a session, allow is never reached: 401", async () => {
    expect((await fetch(`${gw.url}/api/admin/users`)).status).toBe(401);
  });

  test("email_verified: an unverified user gets 403, a verified one passes", async () => {
    expect((await fetch(`${gw.url}/api/verified/x`, { headers: { cookie: member.cookie } })).status).toBe(403);
    await verify(member.user.id);
    // A fresh sign-in reads the user anew (the cached session holds the old claims for SESSION_CACHE_SECONDS).
    const signIn = await fetch(`${gw.url}/api/auth/sign-in/email`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: member.user.email, password: "correct horse battery" }),
    });
    const cookie = signIn.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    const seen = await receivedBy(api, async () => {
      expect((await fetch(`${gw.url}/api/verified/x`, { headers: { cookie } })).status).toBe(200);
    });
    expect(seen[0]!.claims).toMatchObject({ email_verified: true });
  });
});

describe("spellings of a path", () => {
  test.each([
    ["/api/%61dmin/users", 403, "Forbidden"], // read as /api/admin: its allow applies
    ["/api/ADMIN/users", 400, "Bad request path"], // another route for a case-insensitive backend
    ["/api/admin;v=1/users", 400, "Bad request path"], // …for one that drops ;parameters
    ["/api/admin./users", 400, "Bad request path"], // …for one that drops trailing dots
    ["/api%2Fadmin/users", 400, "Bad request path"], // …for one that decodes %2F first
    ["/api/;x/admin/users", 400, "Bad request path"], // …for one that drops ;x, then merges //
    ["/api/%2Fadmin/users", 400, "Bad request path"], // …for one that decodes %2F, then merges //
    ["/api/%2561dmin/users", 400, "Bad request path"], // …for one that decodes twice
  ] as const)("%s as a signed-in non-admin → %d, the upstream not contacted", async (target, status, error) => {
    const seen = await receivedBy(api, async () => {
      const response = await rawHttp(
        Number(new URL(gw.url).port),
        [`GET ${target} HTTP/1.1`, `Host: ${new URL(gw.url).host}`, `Cookie: ${member.cookie}`, "Connection: close", "", ""].join("\r\n"),
      );
      expect(response.status).toBe(status);
      expect(JSON.parse(response.text)).toEqual({ error });
    });
    expect(seen).toHaveLength(0);
  });

  test("HEAD and OPTIONS are subject to allow like GET", async () => {
    for (const method of ["HEAD", "OPTIONS"]) {
      const seen = await receivedBy(api, async () => {
        expect((await fetch(`${gw.url}/api/admin/users`, { method, headers: { cookie: member.cookie } })).status).toBe(403);
        expect((await fetch(`${gw.url}/api/admin/users`, { method, headers: { cookie: ada.cookie } })).status).toBe(200);
      });
      expect(seen.map((r) => r.method)).toEqual([method]);
    }
  });

  test("a chunked body over the route's max_body_bytes is cut off with 413", async () => {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("x".repeat(8)));
        controller.enqueue(new TextEncoder().encode("x".repeat(8)));
        controller.close();
      },
    });
    const response = await fetch(`${gw.url}/api/small/upload`, { method: "POST", headers: { cookie: ada.cookie }, body, duplex: "half" } as RequestInit);
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({ error: "Request body too large" });
  });

  test('an "auth = none" route never looks the session up', async () => {
    const lookups = async () => {
      const text = await metricsOf(gw.url);
      return (sample(text, 'authgate_session_cache_total{result="hit"}') ?? 0) + (sample(text, 'authgate_session_cache_total{result="miss"}') ?? 0);
    };
    const before = await lookups();
    for (let i = 0; i < 3; i++) expect((await fetch(`${gw.url}/api/public/x`, { headers: { cookie: ada.cookie } })).status).toBe(200);
    expect(await lookups()).toBe(before);
    // The same cookie on a required route is looked up: the counter can move.
    expect((await fetch(`${gw.url}/api/x`, { headers: { cookie: ada.cookie } })).status).toBe(200);
    expect(await lookups()).toBe(before + 1);
  });
});

describe("static routes next to the API", () => {
  test("/ is the SPA's index.html, no-cache; a client-side route gets it too; a fingerprinted asset is immutable", async () => {
    const index = await fetch(`${gw.url}/`);
    expect(index.status).toBe(200);
    expect(await index.text()).toBe(INDEX_HTML);
    expect(index.headers.get("content-type")).toStartWith("text/html");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const clientRoute = await fetch(`${gw.url}/settings/profile`, { headers: { accept: "text/html,application/xhtml+xml" } });
    expect(clientRoute.status).toBe(200);
    expect(await clientRoute.text()).toBe(INDEX_HTML);
    const asset = await fetch(`${gw.url}/assets/app-3f2a9c1b.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(asset.headers.get("content-type")).toStartWith("text/javascript");
  });

  test("a missing asset is a 404, an ETag revalidates to 304, a Range is a 206", async () => {
    expect((await fetch(`${gw.url}/assets/missing-3f2a9c1b.js`, { headers: { accept: "text/html" } })).status).toBe(404);
    const first = await fetch(`${gw.url}/assets/app-3f2a9c1b.js`);
    const etag = first.headers.get("etag")!;
    expect(etag).toBeTruthy();
    const again = await fetch(`${gw.url}/assets/app-3f2a9c1b.js`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    const range = await fetch(`${gw.url}/assets/app-3f2a9c1b.js`, { headers: { range: "bytes=0-6" } });
    expect(range.status).toBe(206);
    expect(await range.text()).toBe("console");
  });

  test("a precompressed sibling is sent to a client that accepts it, as is, with Vary", async () => {
    const gzipped = await fetch(`${gw.url}/assets/app-3f2a9c1b.js`, { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
    expect(gzipped.headers.get("content-encoding")).toBe("gzip");
    expect(gzipped.headers.get("vary")).toContain("Accept-Encoding");
    expect(gzipped.headers.get("content-type")).toStartWith("text/javascript");
    const bytes = new Uint8Array(await gzipped.arrayBuffer());
    expect(new TextDecoder().decode(Bun.gunzipSync(bytes))).toBe("console.log('app');".repeat(100));
    const plain = await fetch(`${gw.url}/assets/app-3f2a9c1b.js`, { headers: { "accept-encoding": "identity" } });
    expect(plain.headers.get("content-encoding")).toBeNull();
  });

  test("nothing outside the directory: dot segments as sent are refused before any route", async () => {
    for (const target of ["/assets/../../authgate.toml", "/%2e%2e/authgate.toml", "/assets/..%2F..%2Fauthgate.toml", "/..%5Cauthgate.toml"]) {
      const response = await rawHttp(Number(new URL(gw.url).port), [`GET ${target} HTTP/1.1`, `Host: ${new URL(gw.url).host}`, "Connection: close", "", ""].join("\r\n"));
      expect(`${target} ${response.status}`).toBe(`${target} 400`);
      expect(response.text).not.toContain("routes");
    }
  });

  test("a static route can require a session and an allow rule too", async () => {
    expect((await fetch(`${gw.url}/internal/`)).status).toBe(401);
    expect((await fetch(`${gw.url}/internal/`, { headers: { cookie: ada.cookie } })).status).toBe(403);
    const response = await fetch(`${gw.url}/internal/`, { headers: { cookie: colleague.cookie } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("<h1>internal</h1>");
  });

  test("the gateway's own paths win over the / route; /healthz/ is not /healthz", async () => {
    expect(await (await fetch(`${gw.url}/healthz`)).json()).toEqual({ status: "ok" });
    const slashed = await fetch(`${gw.url}/healthz/`, { headers: { "x-request-id": "healthz-slash" } });
    expect(slashed.status).toBe(404);
    expect(gw.logLines.map((line) => JSON.parse(line)).find((line) => line.requestId === "healthz-slash")).toMatchObject({ route: "app" });
    expect((await fetch(`${gw.url}/api/auth/jwks`)).status).toBe(200);
    expect((await fetch(`${gw.url}/swagger/json`)).status).toBe(200);
  });
});

describe("observability", () => {
  test("every answer, early or late, leaves the in-flight gauge where it was: only the scrape itself is in flight", async () => {
    await fetch(`${gw.url}/api/items`); // 401 in the app
    await fetch(`${gw.url}/api/admin/x`, { headers: { cookie: member.cookie } }); // 403 in the app
    await fetch(`${gw.url}/api/x`, { method: "POST", headers: { origin: "https://evil.example", cookie: ada.cookie } }); // 403 before it
    await fetch(`${gw.url}/api/small/x`, { method: "POST", headers: { cookie: ada.cookie }, body: "x".repeat(20) }); // 413
    await fetch(`${gw.url}/assets/missing.js`); // 404 from the files
    await fetch(`${gw.url}/api/slow/slow-headers?ms=3000`, { headers: { cookie: ada.cookie } }); // 504
    await handshakeStatus("/ws/admin/x", member.cookie); // 403 on a handshake
    await handshakeStatus("/ws/admin/x", "theme=dark"); // 401 on a handshake
    expect(await echoThrough("/ws/maybe/x")).toBe("echo ping"); // 101, then closed
    await rawHttp(Number(new URL(gw.url).port), "GET /a/../b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); // 400 path
    expect(sample(await metricsOf(gw.url), "authgate_http_requests_in_flight")).toBe(1);
  });

  test("the log line and the request metrics carry the route's name", async () => {
    await fetch(`${gw.url}/api/billing/for-the-log`, { headers: { cookie: ada.cookie, "x-request-id": "route-log-1" } });
    await fetch(`${gw.url}/for-the-log`, { headers: { "x-request-id": "route-log-2" } });
    const lines = gw.logLines.map((line) => JSON.parse(line)).filter((line) => line.msg === "request");
    expect(lines.find((line) => line.requestId === "route-log-1")).toMatchObject({ route: "billing", status: 200 });
    expect(lines.find((line) => line.requestId === "route-log-2")).toMatchObject({ route: "app", status: 404 });
    const text = await metricsOf(gw.url);
    expect(sample(text, 'authgate_http_requests_total{route="billing",method="GET",status="2xx"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'authgate_http_request_duration_seconds_count{route="app"}')).toBeGreaterThanOrEqual(1);
  });
});
