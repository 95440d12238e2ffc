import { beforeAll, describe, expect, test } from "bun:test";
import { useGateways } from "./helpers/fixture";
import { sha256 } from "./helpers/backend";
import { signUp, type RunningGateway } from "./helpers/gateway";
import { releaseChunk } from "../src/proxy/body";
import { startNginx } from "../bench/nginx";
import { metricsOf, sample } from "./helpers/metrics";
import { rawExchange } from "./helpers/raw-http";

const TRUSTED_APP = "https://app.example.test";

const fixture = useGateways();
const { gatewayWith } = fixture;

async function backendRequestsDuring(action: () => Promise<unknown>) {
  const before = fixture.backend.received.length;
  await action();
  return fixture.backend.received.slice(before);
}

/** Settles with "timeout" if `promise` has not settled within `ms`. */
function within<T>(ms: number, promise: Promise<T>): Promise<T | "timeout"> {
  let timer: Timer;
  return Promise.race([promise, new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/** Random bytes (getRandomValues fills at most 64 KB at a time). */
function randomPayload(size: number): Uint8Array {
  const payload = new Uint8Array(size);
  for (let i = 0; i < payload.length; i += 65536) crypto.getRandomValues(payload.subarray(i, i + 65536));
  return payload;
}

/** Reads a stream as a slow consumer would, stopping every 2 MB, so the sockets behind it fill up; its size and sha256. */
async function readSlowly(stream: ReadableStream<Uint8Array>): Promise<{ bytes: number; sha256: string }> {
  const hasher = new Bun.CryptoHasher("sha256");
  let bytes = 0;
  let nextStall = 2 * 1024 * 1024;
  for await (const chunk of stream) {
    hasher.update(chunk);
    bytes += chunk.byteLength;
    if (bytes >= nextStall) {
      nextStall += 2 * 1024 * 1024;
      await Bun.sleep(20); // a slow consumer, not a wait for an event
    }
  }
  return { bytes, sha256: hasher.digest("hex") };
}

describe("forwarding headers", () => {
  let plain: RunningGateway;
  let behindProxy: RunningGateway;
  let plainCookie: string;
  let proxiedCookie: string;
  beforeAll(async () => {
    plain = await gatewayWith({});
    behindProxy = await gatewayWith({ TRUSTED_PROXIES: "127.0.0.0/8, ::1" });
    plainCookie = (await signUp(plain.url)).cookie;
    proxiedCookie = (await signUp(behindProxy.url)).cookie;
  });

  const spoofed = {
    "x-forwarded-for": "198.51.100.7",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "public.example.test",
    forwarded: "for=198.51.100.7",
  };

  test("from an untrusted peer, the client's forwarding headers are replaced", async () => {
    const [seen] = await backendRequestsDuring(async () => {
      await (await fetch(plain.url + "/api/fwd", { headers: { cookie: plainCookie, ...spoofed } })).arrayBuffer();
    });
    expect(seen!.headers.get("x-forwarded-for")).toBe("127.0.0.1");
    expect(seen!.headers.get("x-forwarded-proto")).toBe("http");
    expect(seen!.headers.get("x-forwarded-host")).toBe(new URL(plain.url).host);
    expect(seen!.headers.get("forwarded")).toBeNull();
    expect(seen!.headers.get("x-authgate-client-ip")).toBeNull();
  });

  test("from a trusted proxy, the chain is kept and the peer appended", async () => {
    const [seen] = await backendRequestsDuring(async () => {
      await (await fetch(behindProxy.url + "/api/fwd", { headers: { cookie: proxiedCookie, ...spoofed } })).arrayBuffer();
    });
    expect(seen!.headers.get("x-forwarded-for")).toBe("198.51.100.7, 127.0.0.1");
    expect(seen!.headers.get("x-forwarded-proto")).toBe("https");
    expect(seen!.headers.get("x-forwarded-host")).toBe("public.example.test");
  });

  test("the request id is sent to the backend, returned, and logged", async () => {
    const [seen] = await backendRequestsDuring(async () => {
      const response = await fetch(plain.url + "/api/rid", { headers: { cookie: plainCookie, "x-request-id": "trace-42" } });
      expect(response.headers.get("x-request-id")).toBe("trace-42");
      await response.arrayBuffer();
    });
    expect(seen!.headers.get("x-request-id")).toBe("trace-42");
    const line = plain.logLines.map((l) => JSON.parse(l)).find((l) => l.requestId === "trace-42" && l.msg === "request");
    expect(line).toMatchObject({ method: "GET", path: "/api/rid", status: 200 });
  });

  test("a generated request id is returned on the gateway's own answers too", async () => {
    const response = await fetch(plain.url + "/api/x");
    expect(response.status).toBe(401);
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("rate limiting per client", () => {
  const signIn = (url: string, headers: Record<string, string> = {}) =>
    fetch(url + "/api/auth/sign-in/email", {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ email: "nobody@example.test", password: "wrong password here" }),
    }).then((r) => r.status);

  test("behind a trusted proxy each client has its own bucket", async () => {
    const gw = await gatewayWith({ RATE_LIMIT: "on", TRUSTED_PROXIES: "127.0.0.1" });
    const clientA = { "x-forwarded-for": "198.51.100.1" };
    const clientB = { "x-forwarded-for": "198.51.100.2" };
    // Better Auth allows 3 sign-in attempts per 10 s per client.
    for (let i = 0; i < 3; i++) expect(await signIn(gw.url, clientA)).toBe(401);
    expect(await signIn(gw.url, clientA)).toBe(429);
    expect(await signIn(gw.url, clientB)).toBe(401);
  });

  test("without trusted proxies a client cannot escape its bucket by forging X-Forwarded-For", async () => {
    const gw = await gatewayWith({ RATE_LIMIT: "on" });
    for (let i = 0; i < 3; i++) expect(await signIn(gw.url, { "x-forwarded-for": `203.0.113.${i}` })).toBe(401);
    expect(await signIn(gw.url, { "x-forwarded-for": "203.0.113.99" })).toBe(429);
    expect(await signIn(gw.url, { "x-authgate-client-ip": "203.0.113.100" })).toBe(429);
  });
});

describe("session refresh", () => {
  test("Better Auth's refreshed cookie reaches the client beside the backend's cookies", async () => {
    const gw = await gatewayWith({});
    const { cookie } = await signUp(gw.url);
    // A session close to expiry is extended (and its cookie re-set) on use.
    await gw.db.kysely
      .updateTable("session")
      .set({ expiresAt: new Date(Date.now() + 60 * 60 * 1000).toISOString() })
      .execute();
    const response = await fetch(gw.url + "/api/refresh-cookie", { headers: { cookie } });
    expect(response.status).toBe(200);
    const cookies = response.headers.getSetCookie();
    expect(cookies).toContain("backend=1; Path=/");
    expect(cookies.some((c) => c.startsWith("better-auth.session_token="))).toBe(true);
  });
});

describe("CSRF on proxied routes", () => {
  let gw: RunningGateway;
  let cookie: string;
  beforeAll(async () => {
    gw = await gatewayWith({ TRUSTED_ORIGINS: TRUSTED_APP });
    cookie = (await signUp(gw.url)).cookie;
  });

  test.each<[string, string, Record<string, string>, number]>([
    ["POST from a foreign Origin", "POST", { origin: "https://evil.example" }, 403],
    ["DELETE from a foreign Origin", "DELETE", { origin: "https://evil.example" }, 403],
    ["PUT with Origin: null", "PUT", { origin: "null" }, 403],
    ["PATCH with a foreign Referer and no Origin", "PATCH", { referer: "https://evil.example/page" }, 403],
    ["POST with an unparsable Referer", "POST", { referer: "not a url" }, 403],
    ["POST from the gateway's own origin", "POST", { origin: "<self>" }, 200],
    ["POST from a TRUSTED_ORIGINS origin", "POST", { origin: TRUSTED_APP }, 200],
    ["POST with a same-origin Referer", "POST", { referer: "<self>/app/page" }, 200],
    ["POST with neither Origin nor Referer (server to server)", "POST", {}, 200],
    ["GET from a foreign Origin (safe method)", "GET", { origin: "https://evil.example" }, 200],
  ])("%s", async (_name, method, headers, status) => {
    const resolved = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.replace("<self>", gw.url)]));
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/transfer", {
        method,
        headers: { cookie, ...resolved },
        body: method === "GET" ? undefined : "amount=100",
      });
      expect(response.status).toBe(status);
      if (status === 403) expect(await response.json()).toEqual({ error: "Cross-origin request refused" });
      else await response.arrayBuffer();
    });
    expect(seen).toHaveLength(status === 403 ? 0 : 1);
  });
});

describe("request body limits", () => {
  let gw: RunningGateway;
  let cookie: string;
  beforeAll(async () => {
    gw = await gatewayWith({ MAX_BODY_BYTES: "100000" });
    cookie = (await signUp(gw.url)).cookie;
  });

  test("a declared length over MAX_BODY_BYTES gets 413 before the backend is contacted", async () => {
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/upload", { method: "POST", headers: { cookie }, body: new Uint8Array(100_001) });
      expect(response.status).toBe(413);
      expect(await response.json()).toEqual({ error: "Request body too large" });
    });
    expect(seen).toHaveLength(0);
  });

  test("exactly MAX_BODY_BYTES passes", async () => {
    const response = await fetch(gw.url + "/api/upload", { method: "POST", headers: { cookie }, body: new Uint8Array(100_000) });
    expect(((await response.json()) as { bodyBytes: number }).bodyBytes).toBe(100_000);
  });

  test("a chunked body that grows past the limit is cut off", async () => {
    const chunk = new Uint8Array(40_000);
    const body = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/upload", { method: "POST", headers: { cookie }, body });
      expect(response.status).toBe(413);
      await response.arrayBuffer();
    });
    // The backend never received the whole 200 000 bytes.
    for (const request of seen) expect(request.bodyBytes).toBeLessThanOrEqual(100_000);
  });

  test("Better Auth routes refuse bodies over 64 KB", async () => {
    const response = await fetch(gw.url + "/api/auth/sign-in/email", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "a@b.test", password: "x".repeat(70_000) }),
    });
    expect(response.status).toBe(413);
  });

  test("MAX_BODY_BYTES=0 lifts the limit past Bun's 128 MB default", async () => {
    const unlimited = await gatewayWith({ MAX_BODY_BYTES: "0" });
    const { cookie } = await signUp(unlimited.url);
    const size = 130 * 1024 * 1024;
    const response = await fetch(unlimited.url + "/api/upload", { method: "PUT", headers: { cookie }, body: new Uint8Array(size) });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { bodyBytes: number }).bodyBytes).toBe(size);
  });
});

describe("upload chunks are released once fetch has them", () => {
  test.each([
    ["a chunk that is its whole buffer", () => new Uint8Array(64), true],
    ["a view into a larger buffer", () => new Uint8Array(new ArrayBuffer(128), 0, 64), false],
    ["a view at an offset", () => new Uint8Array(128).subarray(64), false],
  ] as const)("%s: released %p", (_, make, released) => {
    const chunk = make();
    const buffer = chunk.buffer as ArrayBuffer;
    const before = buffer.byteLength;
    releaseChunk(chunk);
    expect(buffer.detached).toBe(released);
    expect(buffer.byteLength).toBe(released ? 0 : before);
  });

  test("an upload to a backend that reads slowly, with stalls, arrives byte-identical", async () => {
    // A backend of its own that stops reading every 2 MB, so the sockets fill up and fetch
    // holds bytes in its send buffer while the gateway is asked for (and releases) chunks.
    const slow = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      async fetch(request) {
        return Response.json(await readSlowly(request.body!));
      },
    });
    fixture.defer(() => slow.stop(true));
    const gw = await gatewayWith({ BACKEND_API_URL: slow.url.href.replace(/\/$/, "") });
    const { cookie } = await signUp(gw.url);
    const payload = randomPayload(24 * 1024 * 1024);
    let offset = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= payload.length) return controller.close();
        controller.enqueue(payload.slice(offset, offset + 1_000_003)); // odd sizes, so chunk edges move
        offset += 1_000_003;
      },
    });
    const response = await fetch(gw.url + "/api/upload", { method: "POST", headers: { cookie }, body });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ bytes: payload.length, sha256: sha256(payload) });
  });
});

describe("download chunks are released once Bun's writer has them", () => {
  test("a large download read slowly, with stalls, arrives byte-identical", async () => {
    // 24 MB of random bytes, streamed without a Content-Length (so through the observing
    // stream), to a client that stops reading every 2 MB: the sockets fill up, and chunks are
    // released while Bun still holds earlier bytes in its send buffer.
    const payload = randomPayload(24 * 1024 * 1024);
    const source = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch() {
        let offset = 0;
        return new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              if (offset >= payload.length) return controller.close();
              controller.enqueue(payload.slice(offset, offset + 100_003)); // odd sizes, so chunk edges move
              offset += 100_003;
            },
          }),
          { headers: { "content-type": "application/octet-stream" } },
        );
      },
    });
    fixture.defer(() => source.stop(true));
    const gw = await gatewayWith({ BACKEND_API_URL: source.url.href.replace(/\/$/, "") });
    const { cookie } = await signUp(gw.url);
    const response = await fetch(gw.url + "/api/download", { headers: { cookie } });
    expect(response.headers.get("content-length")).toBeNull();
    expect(await readSlowly(response.body!)).toEqual({ bytes: payload.length, sha256: sha256(payload) });
  });
});

describe("long and broken streams", () => {
  let gw: RunningGateway;
  let cookie: string;
  beforeAll(async () => {
    // A 1 s idle timeout stands in for Bun's 10 s default; the code path is the same. Bun
    // checks timeouts every few seconds: without the gateway lifting it, this stream was cut
    // after ≈4 s of quiet.
    gw = await gatewayWith({}, { idleTimeoutSeconds: 1 });
    cookie = (await signUp(gw.url)).cookie;
  });

  test("an event stream quiet for longer than the idle timeout, and a backend slow to answer, both arrive", async () => {
    const [events, slow] = await Promise.all([
      fetch(gw.url + "/api/quiet-sse?quietMs=6000", { headers: { cookie } }).then((r) => r.text()),
      fetch(gw.url + "/api/slow-headers?ms=6000", { headers: { cookie } }).then((r) => r.text()),
    ]);
    expect(events).toBe("data: first\n\ndata: after the quiet\n\n");
    expect(slow).toBe("worth the wait");
  }, 15_000);

  test("a client that goes away cancels the backend request within a second", async () => {
    const client = new AbortController();
    const response = await fetch(gw.url + "/api/endless", { headers: { cookie }, signal: client.signal });
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("first chunk\n");
    const aborted = fixture.backend.abortOf("/api/endless");
    client.abort();
    expect(await within(1000, aborted)).toBeUndefined();
  });

  test("a backend that fails mid-body ends the client's response promptly, and serving goes on", async () => {
    const response = await fetch(gw.url + "/api/reset", { headers: { cookie } });
    expect(response.status).toBe(200);
    const outcome = await within(
      2000,
      response.arrayBuffer().then(
        (body) => `ended after ${body.byteLength} bytes`,
        () => "errored",
      ),
    );
    expect(outcome).not.toBe("timeout");
    // Whatever the client saw, it was not a complete-looking larger body.
    if (outcome !== "errored") expect(outcome).toBe("ended after 65536 bytes");
    expect((await fetch(gw.url + "/api/after-reset", { headers: { cookie } })).status).toBe(200);
  });

  test("a backend that fails mid-body is counted as an upstream reset and logged; a client that leaves is not", async () => {
    const counted = await gatewayWith({ METRICS_TOKEN: "metrics-secret-token" });
    const { cookie } = await signUp(counted.url);
    const resets = async () => sample(await metricsOf(counted.url), 'authgate_upstream_errors_total{kind="reset"}') ?? 0;

    // A client that goes away in the middle of a body: its cancellation is not the backend's failure.
    const client = new AbortController();
    const endless = await fetch(counted.url + "/api/endless", { headers: { cookie }, signal: client.signal });
    await endless.body!.getReader().read();
    const aborted = fixture.backend.abortOf("/api/endless");
    client.abort();
    await aborted;
    expect(await resets()).toBe(0);

    // A streamed body (no Content-Length): the client's response ends early.
    const response = await fetch(counted.url + "/api/reset", { headers: { cookie, "x-request-id": "mid-body-1" } });
    expect(response.status).toBe(200);
    await response.arrayBuffer().catch(() => {});
    expect(await resets()).toBe(1);
    const line = counted.logLines.find((l) => l.includes("mid-body-1") && l.includes("backend failed mid-body"));
    expect(line).toBeDefined();
    expect(line).not.toContain(fixture.backend.url);

    // A small body with a Content-Length is read whole first: cut short, it is a clean 502.
    // (A backend of its own on a raw socket: Bun.serve would not announce more than it sends.)
    const liar = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          socket.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n0123456789");
          socket.end();
        },
      },
    });
    fixture.defer(() => liar.stop(true));
    const cut = await gatewayWith({ METRICS_TOKEN: "metrics-secret-token", BACKEND_API_URL: `http://127.0.0.1:${liar.port}` });
    const cutCookie = (await signUp(cut.url)).cookie;
    const short = await fetch(cut.url + "/api/short-body", { headers: { cookie: cutCookie, "x-request-id": "mid-body-2" } });
    expect(short.status).toBe(502);
    expect(await short.json()).toEqual({ error: "Backend unavailable" });
    expect(sample(await metricsOf(cut.url), 'authgate_upstream_errors_total{kind="reset"}')).toBe(1);
    expect(cut.logLines.some((l) => l.includes("mid-body-2") && l.includes("backend failed mid-body"))).toBe(true);
  });

  test("the header deadline starts after the upload: an upload slower than PROXY_TIMEOUT_MS succeeds", async () => {
    const quick = await gatewayWith({ PROXY_TIMEOUT_MS: "300" });
    const { cookie } = await signUp(quick.url);
    let sent = 0;
    const paced = new ReadableStream<Uint8Array>({
      async pull(controller) {
        // Three chunks 250 ms apart: 500 ms of upload against a 300 ms header deadline.
        if (sent === 3) return controller.close();
        if (sent > 0) await Bun.sleep(250);
        controller.enqueue(new Uint8Array(1000).fill(sent++));
      },
    });
    const response = await fetch(quick.url + "/api/upload", { method: "POST", headers: { cookie }, body: paced });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { bodyBytes: number }).bodyBytes).toBe(3000);
  });

  test("a backend timeout is logged with the request id and without the backend URL", async () => {
    const quick = await gatewayWith({ PROXY_TIMEOUT_MS: "200" });
    const { cookie } = await signUp(quick.url);
    const response = await fetch(quick.url + "/api/hang", { headers: { cookie, "x-request-id": "slow-1" } });
    expect(response.status).toBe(504);
    const line = quick.logLines.find((l) => l.includes('"level":"error"') && l.includes("slow-1"));
    expect(line).toBeDefined();
    expect(line).not.toContain(fixture.backend.url);
    expect(line).not.toContain(new URL(fixture.backend.url).port);
  });
});

const NGINX = Bun.which("nginx", { PATH: `${process.env.PATH}:/usr/sbin` });
if (!NGINX) console.warn("nginx is missing: skipping the pipelining-behind-nginx test");

describe.skipIf(!NGINX)("pipelined requests behind nginx", () => {
  // Bun's own server closes a connection with pipelined requests (see bad-input.test.ts and
  // the README); nginx, which the README puts in front for TLS, takes them one at a time.
  test("are answered in order, each authenticated and forwarded once", async () => {
    const gw = await gatewayWith({});
    const nginx = (await startNginx(gw.url))!;
    fixture.defer(() => nginx.stop());
    const { cookie, user } = await signUp(nginx.url);
    const port = Number(new URL(nginx.url).port);
    const id = crypto.randomUUID();
    const paths = [1, 2, 3, 4].map((n) => `/api/in-order/${id}/${n}`);
    const payload = paths.map((path) => [`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, `Cookie: ${cookie}`, "", ""].join("\r\n")).join("");
    const seen = await backendRequestsDuring(async () => {
      const exchange = await rawExchange(port, payload, { responses: paths.length });
      expect(exchange.responses.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(exchange.responses.map((r) => (JSON.parse(r.text) as { target: string }).target)).toEqual(paths);
    });
    expect(seen.map((r) => r.target)).toEqual(paths);
    for (const request of seen) expect(request.claims?.sub).toBe(user.id);
  });
});
