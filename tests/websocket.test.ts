import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import type { Server, ServerWebSocket } from "bun";
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from "jose";
import { freePort, signUp, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";
import { Feed } from "./helpers/feed";
import { rawHttp } from "./helpers/raw-http";
import { operatorOn } from "./helpers/operator";
import { join } from "node:path";

/**
 * WebSockets through the gateway against a real WebSocket backend that verifies the
 * gateway's JWT, picks the second offered subprotocol and echoes frames as received.
 * Every wait is on an event (open, message, close, a backend-side record), never a sleep.
 */


interface BackendUpgrade {
  requestId: string | null;
  /** Path and query as the backend's request target carried them. */
  target: string;
  authorization: string | null;
  protocol: string | null;
  cookie: string | null;
  claims?: JWTPayload;
  jwtError?: string;
}

interface BackendFrame {
  requestId: string | null;
  data: string | Uint8Array;
}

interface BackendClose {
  requestId: string | null;
  code: number;
  reason: string;
}

interface WsBackend {
  url: string;
  /** Every HTTP request the backend got (upgrade or not). */
  requests: Feed<BackendUpgrade>;
  frames: Feed<BackendFrame>;
  closes: Feed<BackendClose>;
  /** Accept JWTs from this gateway (its JWKS, issuer and audience); may be called for several. */
  trustGateway(gatewayUrl: string): void;
  stop(): Promise<void>;
}

function startWsBackend(): WsBackend {
  const requests = new Feed<BackendUpgrade>();
  const frames = new Feed<BackendFrame>();
  const closes = new Feed<BackendClose>();
  // One verifier per trusted gateway (issuer); a token must verify against one of them.
  const verifiers: ((token: string) => Promise<JWTPayload>)[] = [];
  const verify = async (token: string): Promise<JWTPayload> => {
    let lastError: unknown = new Error("no trusted gateway");
    for (const verifyWith of verifiers) {
      try {
        return await verifyWith(token);
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  };

  type Data = { requestId: string | null };
  const server: Server<Data> = Bun.serve<Data, never>({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request, srv) {
      const url = new URL(request.url);
      const record: BackendUpgrade = {
        requestId: request.headers.get("x-request-id"),
        target: url.pathname + url.search,
        authorization: request.headers.get("authorization"),
        protocol: request.headers.get("sec-websocket-protocol"),
        cookie: request.headers.get("cookie"),
      };
      if (record.authorization?.startsWith("Bearer ")) {
        try {
          record.claims = await verify(record.authorization.slice("Bearer ".length));
        } catch (error) {
          record.jwtError = (error as Error).message;
        }
      }
      requests.push(record);
      // A real backend refuses a caller whose token does not verify.
      if (!record.claims) return new Response("bad token", { status: 401 });
      const offered = (record.protocol ?? "").split(",").map((p) => p.trim()).filter(Boolean);
      const headers = offered[1] ? { "sec-websocket-protocol": offered[1] } : undefined;
      if (srv.upgrade(request, { data: { requestId: record.requestId }, headers })) return undefined;
      return new Response("expected a WebSocket upgrade", { status: 426 });
    },
    websocket: {
      message(ws: ServerWebSocket<Data>, message) {
        const data = typeof message === "string" ? message : new Uint8Array(message);
        frames.push({ requestId: ws.data.requestId, data });
        if (message === "close-me") ws.close(4000, "backend says bye");
        else ws.send(message);
      },
      close(ws, code, reason) {
        closes.push({ requestId: ws.data.requestId, code, reason });
      },
    },
  });

  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    frames,
    closes,
    trustGateway(gatewayUrl) {
      const jwks = createRemoteJWKSet(new URL("/api/auth/jwks", gatewayUrl));
      verifiers.push(async (token) => (await jwtVerify(token, jwks, { issuer: gatewayUrl, audience: gatewayUrl })).payload);
    },
    stop: () => server.stop(true),
  };
}

interface Client {
  ws: WebSocket;
  requestId: string;
  /** Resolves on open; rejects when the socket errors or closes first. */
  opened: Promise<void>;
  messages: Feed<string | ArrayBuffer>;
  closed: Promise<CloseEvent>;
}

/** Opens a WebSocket through the gateway with listeners attached before anything can arrive. */
function connect(gatewayUrl: string, credential: string | Record<string, string>, path = "/api/live?x=1"): Client {
  const requestId = `ws-${crypto.randomUUID()}`;
  const ws = new WebSocket(gatewayUrl.replace(/^http/, "ws") + path, {
    // A string is the browser's cookie; an object, other headers (an API key).
    headers: { ...(typeof credential === "string" ? { cookie: credential } : credential), "x-request-id": requestId },
    protocols: ["p1", "p2"],
  });
  ws.binaryType = "arraybuffer";
  const messages = new Feed<string | ArrayBuffer>();
  ws.addEventListener("message", (event) => messages.push(event.data as string | ArrayBuffer));
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  const opened = new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error("WebSocket error before open")));
    ws.addEventListener("close", (event) => reject(new Error(`WebSocket closed before open: ${event.code}`)));
  });
  opened.catch(() => {}); // a test that expects a refusal awaits the close instead
  return { ws, requestId, opened, messages, closed };
}

/** An upgrade request sent with fetch, so the HTTP status of a refused upgrade can be asserted. */
function upgradeHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return {
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-key": Buffer.from(randomBytes(16)).toString("base64"),
    "sec-websocket-version": "13",
    ...extra,
  };
}

let backend: WsBackend;
let gw: RunningGateway;
let dir: ReturnType<typeof tempDir>;
let cookie: string;
let user: { id: string; email: string };

beforeAll(async () => {
  dir = tempDir();
  backend = startWsBackend();
  gw = await startGateway({ BACKEND_API_URL: backend.url }, dir.path, { sessionCheckIntervalMs: 200 });
  backend.trustGateway(gw.url);
  ({ cookie, user } = await signUp(gw.url));
});

afterAll(async () => {
  await gw?.stop();
  await backend?.stop();
  dir?.remove();
});

describe("a signed-in client's WebSocket", () => {
  test("opens with the gateway's JWT, the backend's chosen subprotocol and no session cookie", async () => {
    const client = connect(gw.url, `${cookie}; theme=dark`);
    await client.opened;
    expect(client.ws.protocol).toBe("p2");

    const seen = await backend.requests.next((r) => r.requestId === client.requestId);
    expect(seen.target).toBe("/api/live?x=1");
    expect(seen.jwtError).toBeUndefined();
    expect(seen.claims?.sub).toBe(user.id);
    expect(seen.claims?.iss).toBe(gw.url);
    expect(seen.claims?.aud).toBe(gw.url);
    expect(seen.authorization).toStartWith("Bearer ey");
    // Both offered subprotocols reach the backend, once each and in order.
    expect((seen.protocol ?? "").split(",").map((p) => p.trim())).toEqual(["p1", "p2"]);
    // Other cookies pass; Better Auth's session cookie does not.
    expect(seen.cookie).toBe("theme=dark");
    expect(seen.cookie ?? "").not.toContain("better-auth");
    expect(seen.cookie ?? "").not.toContain(cookie.split("=")[1]!);

    client.ws.close(1000);
    await client.closed;
  });

  test("text frames stay strings exactly as sent; binary frames stay byte-identical", async () => {
    const client = connect(gw.url, cookie);
    await client.opened;

    client.ws.send("42");
    const first = await client.messages.next();
    expect(typeof first).toBe("string");
    expect(first).toBe("42");

    client.ws.send('{"a":1}');
    const second = await client.messages.next((m) => m !== first);
    expect(typeof second).toBe("string");
    expect(second).toBe('{"a":1}');

    // The backend got them as text frames too.
    const atBackend = backend.frames.items.filter((f) => f.requestId === client.requestId).map((f) => f.data);
    expect(atBackend).toEqual(["42", '{"a":1}']);

    const bytes = new Uint8Array(randomBytes(300 * 1024 + 7));
    bytes[0] = 0x00;
    bytes[1] = 0xff;
    bytes[bytes.length - 1] = 0x00;
    client.ws.send(bytes);
    const echoed = await client.messages.next((m) => typeof m !== "string");
    expect(echoed).toBeInstanceOf(ArrayBuffer);
    const received = new Uint8Array(echoed as ArrayBuffer);
    expect(received.byteLength).toBe(bytes.byteLength);
    expect(received[0]).toBe(0x00);
    expect(received[1]).toBe(0xff);
    expect(Buffer.from(received).equals(Buffer.from(bytes))).toBe(true);
    const backendBinary = await backend.frames.next((f) => f.requestId === client.requestId && typeof f.data !== "string");
    expect(Buffer.from(backendBinary.data as Uint8Array).equals(Buffer.from(bytes))).toBe(true);

    client.ws.close(1000);
    await client.closed;
  });

  test("the client's close code and reason reach the backend", async () => {
    const client = connect(gw.url, cookie);
    await client.opened;
    client.ws.close(4001, "client bye");
    const atBackend = await backend.closes.next((c) => c.requestId === client.requestId);
    expect(atBackend.code).toBe(4001);
    expect(atBackend.reason).toBe("client bye");
    await client.closed;
  });

  test("the backend's close code and reason reach the client", async () => {
    const client = connect(gw.url, cookie);
    await client.opened;
    client.ws.send("close-me");
    const event = await client.closed;
    expect(event.code).toBe(4000);
    expect(event.reason).toBe("backend says bye");
  });
});

describe("upgrades the gateway refuses", () => {
  test("no session → 401 and the backend sees no request", async () => {
    const before = backend.requests.items.length;
    const requestId = `no-session-${crypto.randomUUID()}`;
    const response = await fetch(gw.url + "/api/live?x=1", { headers: upgradeHeaders({ "x-request-id": requestId }) });
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: "Authentication required" });
    expect(response.headers.get("x-request-id")).toBe(requestId);
    expect(backend.requests.items.length).toBe(before);
  });

  test("a handshake from a foreign Origin → 403 even with a valid session (cross-site WebSocket hijacking)", async () => {
    const before = backend.requests.items.length;
    const response = await fetch(gw.url + "/api/live", { headers: upgradeHeaders({ cookie, origin: "https://evil.example" }) });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ error: "Cross-origin request refused" });
    expect(backend.requests.items.length).toBe(before);
  });

  test.each<[string, Record<string, string>]>([
    ["a subprotocol that is not a token (the WebSocket client would throw: was a 500)", { "sec-websocket-protocol": "a b" }],
    ["a non-ASCII subprotocol", { "sec-websocket-protocol": "\xe9" }],
    ["no Sec-WebSocket-Key", { "sec-websocket-key": "" }],
    ["a Sec-WebSocket-Key that is no 16-byte nonce", { "sec-websocket-key": "c2hvcnQ=" }],
    ["another Sec-WebSocket-Version", { "sec-websocket-version": "8" }],
  ])("%s → 400 before any backend connection is opened", async (_name, extra) => {
    const before = backend.requests.items.length;
    const headers = upgradeHeaders({ cookie, ...extra });
    for (const [name, value] of Object.entries(headers)) if (value === "") delete headers[name];
    // Raw, since fetch would refuse some of these values itself.
    const port = Number(new URL(gw.url).port);
    const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}`);
    const response = await rawHttp(port, [`GET /api/live HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...lines, "", ""].join("\r\n"));
    expect(response.status).toBe(400);
    expect(JSON.parse(response.text)).toEqual({ error: "Invalid WebSocket handshake" });
    expect(backend.requests.items.length).toBe(before);
  });

  test("a handshake from the gateway's own Origin opens", async () => {
    const ws = new WebSocket(gw.url.replace(/^http/, "ws") + "/api/live", { headers: { cookie, origin: gw.url } });
    const outcome = await new Promise<string>((resolve) => {
      ws.onopen = () => resolve("open");
      ws.onclose = (event) => resolve(`closed ${event.code}`);
    });
    expect(outcome).toBe("open");
    const closed = new Promise((resolve) => (ws.onclose = resolve));
    ws.close(1000);
    await closed;
  });

  test("no session → the WebSocket client gets an error and never opens", async () => {
    const before = backend.requests.items.length;
    const client = connect(gw.url, "theme=dark");
    await expect(client.opened).rejects.toThrow();
    const event = await client.closed;
    expect(event.code).not.toBe(1000);
    expect(backend.requests.items.length).toBe(before);
  });

  test("backend down → 502", async () => {
    const downDir = tempDir();
    const down = await startGateway({ BACKEND_API_URL: `http://127.0.0.1:${freePort()}` }, downDir.path, { sessionCheckIntervalMs: 200 });
    try {
      const session = await signUp(down.url);
      const response = await fetch(down.url + "/api/live?x=1", { headers: upgradeHeaders({ cookie: session.cookie }) });
      expect(response.status).toBe(502);
      expect(await response.json()).toEqual({ error: "Backend unavailable" });
      // and it keeps serving
      expect((await fetch(down.url + "/healthz")).status).toBe(200);
    } finally {
      await down.stop();
      downDir.remove();
    }
  });
});

describe("a WebSocket whose session ends", () => {
  test("sign-out through the gateway closes it with 1008", async () => {
    const session = await signUp(gw.url);
    const client = connect(gw.url, session.cookie);
    await client.opened;
    const signOut = await fetch(gw.url + "/api/auth/sign-out", { method: "POST", headers: { cookie: session.cookie, origin: gw.url } });
    expect(signOut.status).toBe(200);
    const event = await client.closed;
    expect(event.code).toBe(1008);
    // The backend side is closed as well.
    const atBackend = await backend.closes.next((c) => c.requestId === client.requestId);
    expect(atBackend.code).toBe(1008);
  });

  test("sign-out closes it at once, without waiting for the periodic check", async () => {
    // Same as above on a gateway whose periodic check would not run during the test,
    // so only the sign-out path can close the socket.
    const slowDir = tempDir();
    const slow = await startGateway({ BACKEND_API_URL: backend.url }, slowDir.path, { sessionCheckIntervalMs: 600_000 });
    backend.trustGateway(slow.url);
    try {
      const session = await signUp(slow.url);
      const client = connect(slow.url, session.cookie);
      await client.opened;
      const signOut = await fetch(slow.url + "/api/auth/sign-out", { method: "POST", headers: { cookie: session.cookie, origin: slow.url } });
      expect(signOut.status).toBe(200);
      const event = await client.closed;
      expect(event.code).toBe(1008);
    } finally {
      await slow.stop();
      slowDir.remove();
    }
  });

  test("a session deleted in the database (revoked elsewhere) is closed with 1008 by the periodic check; others stay open", async () => {
    const revoked = await signUp(gw.url);
    const survivor = await signUp(gw.url);
    const doomed = connect(gw.url, revoked.cookie);
    const alive = connect(gw.url, survivor.cookie);
    await Promise.all([doomed.opened, alive.opened]);

    const deleted = await gw.db.kysely.deleteFrom("session").where("userId", "=", revoked.user.id).executeTakeFirst();
    expect(Number(deleted.numDeletedRows)).toBe(1);

    const event = await doomed.closed;
    expect(event.code).toBe(1008);

    // The periodic check that closed the revoked one left the valid one open and relaying.
    expect(alive.ws.readyState).toBe(WebSocket.OPEN);
    alive.ws.send("still here");
    expect(await alive.messages.next()).toBe("still here");
    alive.ws.close(1000);
    await alive.closed;
  });

  test("a user banned through this instance's admin API: their socket is closed at once", async () => {
    const slowDir = tempDir();
    const slow = await startGateway({ BACKEND_API_URL: backend.url }, slowDir.path, { sessionCheckIntervalMs: 600_000 });
    backend.trustGateway(slow.url);
    const operator = await operatorOn(slow, join(slowDir.path, "authgate.db"));
    try {
      const admin = await signUp(slow.url);
      await operator.setRole(admin.user.id, "admin");
      const victim = await signUp(slow.url);
      const client = connect(slow.url, victim.cookie);
      await client.opened;
      const ban = await fetch(slow.url + "/api/auth/admin/ban-user", {
        method: "POST",
        headers: { cookie: admin.cookie, origin: slow.url, "content-type": "application/json" },
        body: JSON.stringify({ userId: victim.user.id }),
      });
      expect(ban.status).toBe(200);
      expect((await client.closed).code).toBe(1008);
    } finally {
      await operator.close();
      await slow.stop();
      slowDir.remove();
    }
  });

  test("sockets opened with API keys: the backend sees auth_method api_key; a revoked key's and a banned owner's are closed by the periodic check", async () => {
    const operator = await operatorOn(gw, join(dir.path, "authgate.db"));
    try {
      const [revokedOwner, bannedOwner, keptOwner] = await Promise.all([signUp(gw.url), signUp(gw.url), signUp(gw.url)]);
      const revokedKey = await operator.createKey(revokedOwner.user.id);
      const bannedKey = await operator.createKey(bannedOwner.user.id);
      const keptKey = await operator.createKey(keptOwner.user.id);
      const revoked = connect(gw.url, { "x-api-key": revokedKey.key });
      const banned = connect(gw.url, { authorization: `Bearer ${bannedKey.key}` });
      const kept = connect(gw.url, { "x-api-key": keptKey.key });
      await Promise.all([revoked.opened, banned.opened, kept.opened]);
      const seen = await backend.requests.next((r) => r.requestId === kept.requestId);
      expect(seen.claims).toMatchObject({ sub: keptOwner.user.id, auth_method: "api_key", key_id: keptKey.id });
      expect(seen.authorization).toStartWith("Bearer ey");

      await operator.deleteKey(revokedKey.id);
      await operator.ban(bannedOwner.user.id);
      expect((await revoked.closed).code).toBe(1008);
      expect((await banned.closed).code).toBe(1008);
      expect(kept.ws.readyState).toBe(WebSocket.OPEN);
      kept.ws.close(1000);
      await kept.closed;
    } finally {
      await operator.close();
    }
  });

  test("re-checks of a key's socket spend none of its quota", async () => {
    const operator = await operatorOn(gw, join(dir.path, "authgate.db"));
    try {
      const owner = await signUp(gw.url);
      const quota = await operator.createKey(owner.user.id, { remaining: 3 });
      const client = connect(gw.url, { "x-api-key": quota.key });
      await client.opened; // the handshake used one: 2 left
      // Each sentinel's close proves a whole periodic check ran, which re-checked the quota key's socket too.
      for (let i = 0; i < 3; i++) {
        const sentinelKey = await operator.createKey(owner.user.id);
        const sentinel = connect(gw.url, { "x-api-key": sentinelKey.key });
        await sentinel.opened;
        await operator.deleteKey(sentinelKey.id);
        expect((await sentinel.closed).code).toBe(1008);
      }
      const row = await operator.context.adapter.findOne<{ remaining: number }>({ model: "apikey", where: [{ field: "id", value: quota.id }] });
      expect(row!.remaining).toBe(2);
      expect(client.ws.readyState).toBe(WebSocket.OPEN);
      client.ws.close(1000);
      await client.closed;
    } finally {
      await operator.close();
    }
  });

  test("a socket on an allow.roles route is closed once its user no longer has the role", async () => {
    const roleDir = tempDir();
    const file = join(roleDir.path, "authgate.toml");
    await Bun.write(file, `[[routes]]\nname = "live"\npath = "/api"\nupstream = "${backend.url}"\n\n[[routes]]\nname = "admin-live"\npath = "/api/admin"\nupstream = "${backend.url}"\nallow = { roles = ["admin"] }\n`);
    const roles = await startGateway({ CONFIG_FILE: file }, roleDir.path, { sessionCheckIntervalMs: 200 });
    backend.trustGateway(roles.url);
    const operator = await operatorOn(roles, join(roleDir.path, "authgate.db"));
    try {
      const admin = await signUp(roles.url);
      await operator.setRole(admin.user.id, "admin");
      const onAdmin = connect(roles.url, admin.cookie, "/api/admin/live");
      const onPlain = connect(roles.url, admin.cookie, "/api/live");
      await Promise.all([onAdmin.opened, onPlain.opened]);
      await operator.setRole(admin.user.id, "user");
      expect((await onAdmin.closed).code).toBe(1008);
      // The same session's socket on a route without the rule stays.
      expect(onPlain.ws.readyState).toBe(WebSocket.OPEN);
      onPlain.ws.close(1000);
      await onPlain.closed;
    } finally {
      await operator.close();
      await roles.stop();
      roleDir.remove();
    }
  });

  test("the gateway still serves /healthz after all of that", async () => {
    const response = await fetch(gw.url + "/healthz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });
});

describe("a graceful shutdown", () => {
  test("closes open WebSockets with 1001 and reaches the backend's side too", async () => {
    const shutdownDir = tempDir();
    const stopping = await startGateway({ BACKEND_API_URL: backend.url }, shutdownDir.path);
    backend.trustGateway(stopping.url);
    const session = await signUp(stopping.url);
    const client = connect(stopping.url, session.cookie);
    await client.opened;
    client.ws.send("before shutdown");
    expect(await client.messages.next()).toBe("before shutdown");

    await stopping.gateway.shutdown(1000);
    const event = await client.closed;
    expect(event.code).toBe(1001);
    expect(event.reason).toBe("Gateway shutting down");
    await stopping.db.close();
    shutdownDir.remove();
  });
});
