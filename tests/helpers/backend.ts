import { randomBytes } from "node:crypto";
import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyResult } from "jose";

/** What the test backend saw of one request. */
export interface Received {
  method: string;
  /** Path and query exactly as the backend's request target carried them. */
  target: string;
  headers: Headers;
  bodyBytes: number;
  bodySha256: string;
  /** Claims of the bearer JWT when it verified against the gateway's JWKS. */
  claims?: JWTPayload;
  protectedHeader?: JWTVerifyResult["protectedHeader"];
  jwtError?: string;
}

export interface TestBackend {
  url: string;
  received: Received[];
  /** Paths whose requests the backend saw aborted (the client, or the gateway, went away). */
  aborted: Set<string>;
  /** Resolves when a request to `path` is aborted. */
  abortOf(path: string): Promise<void>;
  /** Lets the SSE route send its next event. */
  releaseSseEvent(): void;
  /**
   * Point JWT verification at a gateway: its JWKS URL, issuer and audience (the issuer unless
   * given: a route's own `audience`). `jwksCooldownMs`: jose's minimum time between JWKS
   * refetches (its default is 30 s).
   */
  trustGateway(gatewayUrl: string, issuer: string, jwksCooldownMs?: number, audience?: string): void;
  stop(): Promise<void>;
}

export function sha256(bytes: ArrayBuffer | Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

async function hashBody(request: Request): Promise<{ bodyBytes: number; bodySha256: string }> {
  const hasher = new Bun.CryptoHasher("sha256");
  let bodyBytes = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      hasher.update(chunk);
      bodyBytes += chunk.byteLength;
    }
  }
  return { bodyBytes, bodySha256: hasher.digest("hex") };
}

/**
 * A real HTTP backend on an ephemeral loopback port. Every request is recorded with its
 * JWT verified by `jose` against the gateway's published JWKS, as a real backend would.
 */
export function startBackend(): TestBackend {
  const received: Received[] = [];
  const aborted = new Set<string>();
  const abortWaiters = new Map<string, (() => void)[]>();
  const noteAbort = (path: string) => {
    aborted.add(path);
    for (const resolve of abortWaiters.get(path) ?? []) resolve();
    abortWaiters.delete(path);
  };
  let verify: ((token: string) => Promise<JWTVerifyResult>) | undefined;
  const sseWaiters: (() => void)[] = [];
  let sseCredits = 0;
  const nextSseEvent = () =>
    new Promise<void>((resolve) => {
      if (sseCredits > 0) {
        sseCredits--;
        resolve();
      } else sseWaiters.push(resolve);
    });
  const hung: (() => void)[] = [];
  const binary = new Uint8Array(randomBytes(3 * 1024 * 1024));

  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    async fetch(request) {
      const url = new URL(request.url);
      const target = request.url.slice(request.url.indexOf("/", url.protocol.length + 2));
      const record: Received = { method: request.method, target, headers: request.headers, ...(await hashBody(request)) };
      const authorization = request.headers.get("authorization");
      if (authorization?.startsWith("Bearer ") && verify) {
        try {
          const result = await verify(authorization.slice(7));
          record.claims = result.payload;
          record.protectedHeader = result.protectedHeader;
        } catch (error) {
          record.jwtError = (error as Error).message;
        }
      }
      received.push(record);
      request.signal.addEventListener("abort", () => noteAbort(url.pathname));

      const route = url.pathname.replace(/^\/api/, "");
      if (route.startsWith("/status/")) {
        const status = Number(route.slice("/status/".length));
        return new Response(status === 204 ? null : `status ${status}`, { status, headers: { "x-backend": "yes" } });
      }
      switch (route) {
        case "/whoami":
          // What the backend learnt from the verified JWT: what a page can show of its caller.
          return Response.json({ claims: record.claims ?? null, jwtError: record.jwtError ?? null });
        case "/redirect":
          return new Response(null, { status: 302, headers: { location: "/api/elsewhere" } });
        case "/gzip": {
          const body = Bun.gzipSync(new TextEncoder().encode("compressed hello ".repeat(1000)));
          return new Response(body, { headers: { "content-encoding": "gzip", "content-type": "text/plain" } });
        }
        case "/cookies": {
          const headers = new Headers({ "content-type": "text/plain" });
          headers.append("set-cookie", "a=1; Path=/; HttpOnly");
          headers.append("set-cookie", "b=2; Path=/api; Secure");
          headers.append("set-cookie", "c=3, with comma; Path=/");
          return new Response("cookies", { headers });
        }
        case "/binary": {
          // Chunked (no content-length) binary: the case that breaks a proxy that re-encodes text.
          const bytes = binary;
          return new Response(
            new ReadableStream({
              start(controller) {
                for (let i = 0; i < bytes.length; i += 65536) controller.enqueue(bytes.slice(i, i + 65536));
                controller.close();
              },
            }),
            { headers: { "content-type": "application/octet-stream", "x-sha256": sha256(bytes) } },
          );
        }
        case "/sse":
          return new Response(
            new ReadableStream({
              async pull(controller) {
                for (let n = 1; n <= 3; n++) {
                  await nextSseEvent();
                  controller.enqueue(new TextEncoder().encode(`id: ${n}\ndata: event ${n}\n\n`));
                }
                controller.close();
              },
            }),
            { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } },
          );
        case "/quiet-sse": {
          // One event, then silence for ?quietMs, then a last event: longer than an idle timeout.
          const quietMs = Number(url.searchParams.get("quietMs") ?? "0");
          const encoder = new TextEncoder();
          return new Response(
            new ReadableStream({
              async start(controller) {
                controller.enqueue(encoder.encode("data: first\n\n"));
                await Bun.sleep(quietMs);
                controller.enqueue(encoder.encode("data: after the quiet\n\n"));
                controller.close();
              },
            }),
            { headers: { "content-type": "text/event-stream" } },
          );
        }
        case "/slow-headers":
          // Answers only after ?ms of silence: longer than an idle timeout, shorter than PROXY_TIMEOUT_MS.
          await Bun.sleep(Number(url.searchParams.get("ms") ?? "0"));
          return new Response("worth the wait");
        case "/endless":
          // Sends a first chunk, then waits for the client to go away.
          return new Response(
            new ReadableStream({
              start(controller) {
                controller.enqueue(new TextEncoder().encode("first chunk\n"));
              },
            }),
            { headers: { "content-type": "text/plain" } },
          );
        case "/reset":
          // 64 KB of a body, then the stream fails: the connection ends mid-body.
          return new Response(
            new ReadableStream({
              async pull(controller) {
                controller.enqueue(new Uint8Array(65536));
                await Bun.sleep(1);
                controller.error(new Error("backend crashed mid-stream"));
              },
            }),
            { headers: { "content-type": "application/octet-stream" } },
          );
        case "/refresh-cookie": {
          const headers = new Headers({ "content-type": "text/plain" });
          headers.append("set-cookie", "backend=1; Path=/");
          return new Response("ok", { headers });
        }
        case "/hang":
          return new Promise<Response>((resolve) => hung.push(() => resolve(new Response("late"))));
      }
      return Response.json(
        { method: request.method, target, bodyBytes: record.bodyBytes, bodySha256: record.bodySha256 },
        { headers: { "x-backend": "yes" } },
      );
    },
  });

  return {
    url: `http://127.0.0.1:${server.port}`,
    received,
    aborted,
    abortOf(path) {
      if (aborted.has(path)) return Promise.resolve();
      return new Promise((resolve) => abortWaiters.set(path, [...(abortWaiters.get(path) ?? []), resolve]));
    },
    releaseSseEvent() {
      const waiter = sseWaiters.shift();
      if (waiter) waiter();
      else sseCredits++;
    },
    trustGateway(gatewayUrl, issuer, jwksCooldownMs, audience = issuer) {
      const jwks = createRemoteJWKSet(new URL("/api/auth/jwks", gatewayUrl), jwksCooldownMs === undefined ? {} : { cooldownDuration: jwksCooldownMs });
      verify = (token) => jwtVerify(token, jwks, { issuer, audience, algorithms: ["EdDSA"] });
    },
    async stop() {
      for (const release of hung) release();
      await server.stop(true);
    },
  };
}
