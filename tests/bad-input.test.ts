import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { sha256, startBackend, type TestBackend } from "./helpers/backend";
import { signUp, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";
import { Feed } from "./helpers/feed";
import { MAX_API_PATH_SEGMENTS } from "../src/proxy/path";

/**
 * Hostile and broken input. Every case asserts the answer and that the gateway goes on
 * serving: an authenticated proxied GET right after it still gets the backend's 200.
 * Raw TCP (Bun.connect) is used wherever fetch would refuse or normalise the input.
 */

let backend: TestBackend;
let gw: RunningGateway;
let dir: ReturnType<typeof tempDir>;
let cookie: string;
let port: number;

beforeAll(async () => {
  dir = tempDir();
  backend = startBackend();
  // No session cache: a session expired in the database must be refused on the very next request
  // (with the cache on, that takes up to SESSION_CACHE_SECONDS; tests/session-cache.test.ts).
  gw = await startGateway({ BACKEND_API_URL: backend.url, PROXY_TIMEOUT_MS: "2000", SESSION_CACHE_SECONDS: "0" }, dir.path);
  backend.trustGateway(gw.url, gw.url);
  ({ cookie } = await signUp(gw.url));
  port = Number(new URL(gw.url).port);
});

afterAll(async () => {
  await gw?.stop();
  await backend?.stop();
  dir?.remove();
});

/** The gateway still proxies an authenticated request (and the backend sees it). */
async function expectStillServing() {
  const marker = `/api/still-serving/${crypto.randomUUID()}`;
  const response = await fetch(gw.url + marker, { headers: { cookie } });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { target: string };
  expect(body.target).toBe(marker);
}

/** Runs `action` and returns what the backend received meanwhile. */
async function backendRequestsDuring(action: () => Promise<unknown>) {
  const before = backend.received.length;
  await action();
  return backend.received.slice(before);
}

function expectJsonError(response: { status: number; headers: Headers; text: string }, status: number, error: string) {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toContain("application/json");
  expect(JSON.parse(response.text)).toEqual({ error });
}

const asRaw = async (response: Response) => ({ status: response.status, headers: response.headers, text: await response.text() });

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client on Bun.connect.

interface RawResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
  text: string;
  /** The bytes as received, latin1. */
  raw: string;
}

/** Parses one complete response from `bytes`; undefined while it is incomplete (unless `atEof`). */
function parseResponse(bytes: Uint8Array, atEof: boolean): RawResponse | undefined {
  const raw = Buffer.from(bytes).toString("latin1");
  const headEnd = raw.indexOf("\r\n\r\n");
  if (headEnd === -1) {
    if (!atEof) return undefined;
    throw new Error(`connection closed without a complete response: ${JSON.stringify(raw)}`);
  }
  const [statusLine, ...lines] = raw.slice(0, headEnd).split("\r\n");
  const status = Number(statusLine!.split(" ")[1]);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const rest = bytes.subarray(headEnd + 4);
  let body: Uint8Array | undefined;
  const length = headers.get("content-length");
  if (length !== null) {
    if (rest.byteLength >= Number(length)) body = rest.subarray(0, Number(length));
  } else if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
    body = dechunk(rest);
  } else if (atEof) {
    body = rest; // body delimited by the connection's end
  }
  if (body === undefined) {
    if (!atEof) return undefined;
    throw new Error(`connection closed inside the body: ${JSON.stringify(raw)}`);
  }
  return { status, headers, body, text: new TextDecoder().decode(body), raw };
}

/** A complete chunked body's bytes, or undefined while the last chunk has not arrived. */
function dechunk(bytes: Uint8Array): Uint8Array | undefined {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = Buffer.from(bytes.subarray(at)).indexOf("\r\n");
    if (lineEnd === -1) return undefined;
    const size = parseInt(Buffer.from(bytes.subarray(at, at + lineEnd)).toString("latin1"), 16);
    at += lineEnd + 2;
    if (size === 0) return bytes.byteLength >= at + 2 ? Buffer.concat(parts) : undefined;
    if (bytes.byteLength < at + size + 2) return undefined;
    parts.push(bytes.subarray(at, at + size));
    at += size + 2;
  }
}

/**
 * Writes `request` as is to the gateway and resolves with the first complete response
 * (or what arrived before the gateway closed the connection). Driven by the socket's
 * data/drain/close events; no timers.
 */
function rawHttp(request: string | Uint8Array, toPort = port): Promise<RawResponse> {
  const payload = typeof request === "string" ? Buffer.from(request, "latin1") : Buffer.from(request);
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    let written = 0;
    let settled = false;
    const settle = (socket: { end(): void } | undefined, value: RawResponse | undefined, error?: unknown) => {
      if (settled) return;
      settled = true;
      socket?.end();
      if (value) resolve(value);
      else reject(error);
    };
    const writeMore = (socket: { write(data: Uint8Array): number; end(): void }) => {
      while (written < payload.byteLength) {
        const n = socket.write(payload.subarray(written));
        if (n <= 0) return; // wait for drain
        written += n;
      }
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port: toPort,
      socket: {
        open: writeMore,
        drain: writeMore,
        data(socket, chunk) {
          received = Buffer.concat([received, chunk]);
          try {
            const response = parseResponse(received, false);
            if (response) settle(socket, response);
          } catch (error) {
            settle(socket, undefined, error);
          }
        },
        close() {
          try {
            settle(undefined, parseResponse(received, true));
          } catch (error) {
            settle(undefined, undefined, error);
          }
        },
        error(_socket, error) {
          settle(undefined, undefined, error);
        },
        connectError(_socket, error) {
          settle(undefined, undefined, error);
        },
      },
    }).catch((error) => settle(undefined, undefined, error));
  });
}

/** A request head with the session cookie, so that anything that got past the gateway's checks would be proxied. */
function head(method: string, target: string, extra: string[] = []): string {
  return [`${method} ${target} HTTP/1.1`, `Host: 127.0.0.1:${port}`, `Cookie: ${cookie}`, ...extra, "", ""].join("\r\n");
}

// ---------------------------------------------------------------------------------------

describe("cookies", () => {
  test.each([
    ["malformed session cookie", "better-auth.session_token=%%%;;;="],
    ["a cookie header of only ;", ";"],
  ])("%s → 401, backend not contacted", async (_name, badCookie) => {
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/items", { headers: { cookie: badCookie } });
      expectJsonError(await asRaw(response), 401, "Authentication required");
    });
    expect(seen).toHaveLength(0);
    await expectStillServing();
  });

  test("an oversized (10 KB) session cookie → 401, backend not contacted", async () => {
    const big = `better-auth.session_token=${"A".repeat(10 * 1024)}`;
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/items", { headers: { cookie: big } });
      // 10 KB fits Bun's header limit, so the gateway itself answers.
      expectJsonError(await asRaw(response), 401, "Authentication required");
    });
    expect(seen).toHaveLength(0);
    await expectStillServing();
  });

  test("a forged session cookie (made-up value.signature) → 401, backend not contacted", async () => {
    const value = randomBytes(24).toString("base64url");
    const signature = randomBytes(32).toString("base64");
    const forged = `better-auth.session_token=${encodeURIComponent(`${value}.${signature}`)}`;
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/items", { headers: { cookie: forged } });
      expectJsonError(await asRaw(response), 401, "Authentication required");
    });
    expect(seen).toHaveLength(0);
    await expectStillServing();
  });

  test("an expired session → 401, backend not contacted", async () => {
    const other = await signUp(gw.url);
    // Valid first, so the 401 below is caused by the expiry alone.
    expect((await fetch(gw.url + "/api/before-expiry", { headers: { cookie: other.cookie } })).status).toBe(200);
    const updated = await gw.db.kysely
      .updateTable("session")
      .set({ expiresAt: new Date(Date.now() - 60_000).toISOString() })
      .where("userId", "=", other.user.id)
      .executeTakeFirst();
    expect(Number(updated.numUpdatedRows)).toBe(1);

    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/items", { headers: { cookie: other.cookie } });
      expectJsonError(await asRaw(response), 401, "Authentication required");
    });
    expect(seen).toHaveLength(0);
    await expectStillServing();
  });
});

describe("oversized and malformed requests (raw)", () => {
  test("64 KB of headers → 431 from Bun, backend not contacted", async () => {
    const padding = Array.from({ length: 64 }, (_, i) => `X-Pad-${i}: ${"p".repeat(1024)}`);
    const seen = await backendRequestsDuring(async () => {
      const response = await rawHttp(head("GET", "/api/items", padding));
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(response.status).toBe(431);
    });
    expect(seen).toHaveLength(0);
    await expectStillServing();
  });

  test.each([
    ["a bare CR", "X-Evil: abc\rInjected: yes"],
    ["a bare LF", "X-Evil: abc\nInjected: yes"],
  ])("a header value containing %s → 400, backend not contacted", async (_name, line) => {
    const seen = await backendRequestsDuring(async () => {
      const response = await rawHttp(head("GET", "/api/items", [line]));
      expect(response.status).toBe(400);
    });
    expect(seen).toHaveLength(0);
    await expectStillServing();
  });

  test("a path of 8 KB under /api/ is proxied (200) with the path intact", async () => {
    const target = `/api/${"a".repeat(8 * 1024)}`;
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + target, { headers: { cookie } });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { target: string }).target).toBe(target);
    });
    expect(seen.map((r) => r.target)).toEqual([target]);
    await expectStillServing();
  });
});

describe("paths the gateway refuses (raw, as sent)", () => {
  test("invalid percent-encoding /api/a%zz → 400 Bad request path, backend not contacted", async () => {
    const seen = await backendRequestsDuring(async () => {
      const response = await rawHttp(head("GET", "/api/a%zz"));
      expectJsonError(response, 400, "Bad request path");
    });
    expect(seen).toHaveLength(0);
    await expectStillServing();
  });

  test.each([
    // An encoded separator hides the dot segment from URL resolution: the gateway's rule refuses it.
    ["/api/x/..%2Fauth/sign-in/email", "POST", 400, "Bad request path"],
    ["/api/%2e%2e%5cadmin", "GET", 400, "Bad request path"],
    // Dot segments Bun's URL parser would resolve before request.url: caught on the target as sent.
    ["/api/.%2e/x", "GET", 400, "Bad request path"],
    ["/api/../admin", "GET", 400, "Bad request path"],
    ["/api/%2E%2e/healthz", "GET", 400, "Bad request path"],
    ["/api/./items", "GET", 400, "Bad request path"],
    ["/api/items/.", "GET", 400, "Bad request path"],
    ["/api/a\\..\\items", "GET", 400, "Bad request path"],
    ["/api/a#/../items", "GET", 400, "Bad request path"],
    // Would otherwise become a Better Auth route, or a path under /api/ from one outside it.
    ["/api/x/../auth/sign-in/email", "POST", 400, "Bad request path"],
    ["/api/x/..;/admin", "GET", 400, "Bad request path"],
    ["/x/../api/items", "GET", 400, "Bad request path"],
    ["/healthz/%2e%2e/api/items", "GET", 400, "Bad request path"],
    // Segments the raw check cannot see one by one are refused as well.
    ["/api//items", "GET", 400, "Bad request path"],
    ["/api/items//", "GET", 400, "Bad request path"],
    ["/api" + "/s".repeat(MAX_API_PATH_SEGMENTS + 1), "GET", 400, "Bad request path"],
  ] as const)("%s (%s) → %d, never reaching the backend", async (target, method, status, error) => {
    const seen = await backendRequestsDuring(async () => {
      const body = method === "POST" ? '{"email":"a@b.c","password":"x"}' : "";
      const extra = method === "POST" ? ["Content-Type: application/json", `Content-Length: ${body.length}`] : [];
      const response = await rawHttp(head(method, target, extra) + body);
      expectJsonError(response, status, error);
    });
    expect(seen).toHaveLength(0);
    await expectStillServing();
  });
});

describe("paths the raw check lets through", () => {
  test.each([
    ["/api/items/", "a trailing slash"],
    ["/api" + "/s".repeat(MAX_API_PATH_SEGMENTS), "the deepest path checked"],
    ["/api/files/a%2Fb/..x/.hidden/x..", "dots that are not dot segments"],
    ["/api/items?next=../../x&dot=.", "dot segments in the query"],
  ])("%s (%s) reaches the backend unchanged", async (target) => {
    const seen = await backendRequestsDuring(async () => {
      const response = await rawHttp(head("GET", target));
      expect(response.status).toBe(200);
    });
    expect(seen.map((r) => r.target)).toEqual([target]);
  });
});

describe("characters a request target may not contain", () => {
  // RFC 9112 forbids them raw; clients that follow the URL standard send them encoded. Bun's
  // URL parser percent-encodes them before the gateway sees request.url, so the backend gets
  // the encoded spelling (what a browser would have sent). The README states this.
  test("arrive percent-encoded at the backend, in the path and in the query", async () => {
    const seen = await backendRequestsDuring(async () => {
      const response = await rawHttp(head("GET", "/api/a{b}^c?q=<'x'>"));
      expect(response.status).toBe(200);
    });
    expect(seen.map((r) => r.target)).toEqual(["/api/a%7Bb%7D%5Ec?q=%3C%27x%27%3E"]);
  });
});

describe("request ids", () => {
  test("X-Request-Id with spaces is replaced by a fresh id, the same one at the backend", async () => {
    const ids: (string | null)[] = [];
    const seen = await backendRequestsDuring(async () => {
      for (let i = 0; i < 2; i++) {
        const response = await fetch(gw.url + "/api/items", { headers: { cookie, "x-request-id": "a b c" } });
        expect(response.status).toBe(200);
        await response.arrayBuffer();
        ids.push(response.headers.get("x-request-id"));
      }
    });
    expect(seen).toHaveLength(2);
    for (const [i, id] of ids.entries()) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(seen[i]!.headers.get("x-request-id")).toBe(id);
    }
    // Fresh for each request, not one fixed replacement.
    expect(ids[0]).not.toBe(ids[1]);
    await expectStillServing();
  });

  test("a sane X-Request-Id is kept end to end", async () => {
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/items", { headers: { cookie, "x-request-id": "abc-123" } });
      expect(response.status).toBe(200);
      expect(response.headers.get("x-request-id")).toBe("abc-123");
      await response.arrayBuffer();
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers.get("x-request-id")).toBe("abc-123");
    await expectStillServing();
  });
});

describe("bodies that disagree with their Content-Length", () => {
  test("a body longer than its Content-Length: the backend gets exactly Content-Length bytes", async () => {
    const seen = await backendRequestsDuring(async () => {
      const response = await rawHttp(
        head("POST", "/api/upload", ["Content-Type: application/octet-stream", "Content-Length: 5"]) + "helloWORLD",
      );
      expect(response.status).toBe(200);
      const echoed = JSON.parse(response.text) as { bodyBytes: number; bodySha256: string };
      expect(echoed.bodyBytes).toBe(5);
      expect(echoed.bodySha256).toBe(sha256(new TextEncoder().encode("hello")));
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.bodyBytes).toBe(5);
    expect(seen[0]!.bodySha256).toBe(sha256(new TextEncoder().encode("hello")));
    // "WORLD" was not taken for a request of its own that reached the backend.
    const after = await backendRequestsDuring(() => expectStillServing());
    expect(after.map((r) => r.target)).toHaveLength(1);
    expect(after[0]!.target).toStartWith("/api/still-serving/");
  });

  test("a client that sends half its body and hangs up: the backend's request is cut short, the gateway serves on", async () => {
    // A backend of its own that reports, as events, what it has read and how each body ended
    // (the helper backend records only requests whose body it read completely).
    const observer = startUploadObserver();
    const observedDir = tempDir();
    const observed = await startGateway({ BACKEND_API_URL: observer.url }, observedDir.path);
    try {
      const session = await signUp(observed.url);
      const observedPort = Number(new URL(observed.url).port);
      const request =
        [
          "POST /api/half HTTP/1.1",
          `Host: 127.0.0.1:${observedPort}`,
          `Cookie: ${session.cookie}`,
          "Content-Type: application/octet-stream",
          "Content-Length: 1000",
          "",
          "",
        ].join("\r\n") + "x".repeat(500);
      let clientClosed!: () => void;
      const closed = new Promise<void>((resolve) => (clientClosed = resolve));
      const socket = await Bun.connect({
        hostname: "127.0.0.1",
        port: observedPort,
        socket: { data() {}, close: () => clientClosed() },
      });
      expect(socket.write(request)).toBe(Buffer.byteLength(request, "latin1"));

      // Hang up only once the backend is streaming the half body, so the cut happens mid-request.
      await observer.progress.next((p) => p.target === "/api/half" && p.bytes === 500);
      socket.end();
      await closed;

      const outcome = await observer.outcomes.next((o) => o.target === "/api/half");
      expect(outcome.bytes).toBe(500);
      // The backend can tell the body is incomplete: it errors or the request aborts, it does not end cleanly.
      expect(["errored", "aborted"]).toContain(outcome.how);

      // The gateway serves the next request, through the same backend.
      const next = await fetch(observed.url + "/api/next", { headers: { cookie: session.cookie } });
      expect(next.status).toBe(200);
      expect(await next.json()).toEqual({ target: "/api/next", bytes: 0 });
      await expectStillServing();
    } finally {
      await observed.stop();
      observedDir.remove();
      await observer.stop();
    }
  });
});

describe("the Host header", () => {
  // Elysia finds the path at `request.url.indexOf("/", 11)`, assuming a host of 4+ characters.
  // The gateway's own checks use the real path; both must agree on what is routed.
  test.each([
    ["x", "/v1/api/items"],
    ["x", "/v1/api/..%2F..%2Fadmin"],
    ["xy", "/a/api/%zz"],
  ])("Host: %s with %s is not proxied outside /api/ (404), backend not contacted", async (host, target) => {
    const seen = await backendRequestsDuring(async () => {
      const response = await rawHttp(
        [`GET ${target} HTTP/1.1`, `Host: ${host}`, `Cookie: ${cookie}`, "", ""].join("\r\n"),
      );
      expectJsonError(response, 404, "Not found");
    });
    expect(seen).toHaveLength(0);
    await expectStillServing();
  });

  test("Host: x still reaches /healthz", async () => {
    const response = await rawHttp(["GET /healthz HTTP/1.1", "Host: x", "", ""].join("\r\n"));
    expect(response.status).toBe(200);
    expect(JSON.parse(response.text)).toEqual({ status: "ok" });
    await expectStillServing();
  });
});

// ---------------------------------------------------------------------------------------


interface UploadProgress {
  target: string;
  /** Body bytes read so far. */
  bytes: number;
}

interface UploadOutcome {
  target: string;
  /** Body bytes the backend read before the body ended, failed or the request was aborted. */
  bytes: number;
  how: "ended" | "errored" | "aborted";
}

/** A backend that reports each request's body progress and how it ended (the helper backend records only completed ones). */
function startUploadObserver() {
  const progress = new Feed<UploadProgress>();
  const outcomes = new Feed<UploadOutcome>();
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const url = new URL(request.url);
      const target = url.pathname + url.search;
      let bytes = 0;
      let reported = false;
      const report = (how: UploadOutcome["how"]) => {
        if (!reported) outcomes.push({ target, bytes, how });
        reported = true;
      };
      request.signal.addEventListener("abort", () => report("aborted"));
      progress.push({ target, bytes });
      try {
        if (request.body) {
          for await (const chunk of request.body) {
            bytes += chunk.byteLength;
            progress.push({ target, bytes });
          }
        }
        report("ended");
      } catch {
        report("errored");
      }
      return Response.json({ target, bytes });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, progress, outcomes, stop: () => server.stop(true) };
}
