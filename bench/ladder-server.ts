/**
 * One rung of the ablation ladder (bench/ladder.ts): the bare Bun proxy plus the first STEPS
 * of the gateway's per-request work, each done by the gateway's own modules, in the order the
 * gateway does it. STEPS=0 is the bare proxy; LADDER_STEPS.length is everything the gateway
 * does on its proxy thread except Elysia (whose cost is the difference to authgate itself).
 * Usage: BACKEND=http://127.0.0.1:PORT STEPS=N bun bench/ladder-server.ts
 * Prints one JSON line: {"port": …, "cookie": "…"} (a signed-up user's session cookie).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createIdentityResolver } from "../src/auth/identity";
import { startAuthWorker } from "../src/auth/remote";
import { loadConfig } from "../src/config";
import { createRequestLog } from "../src/ops/access-log";
import { createLogger } from "../src/ops/log";
import { createMetrics } from "../src/ops/metrics";
import { compileTrustedProxies, establishContext } from "../src/ops/request-context";
import { isCrossSiteRefused } from "../src/proxy/csrf";
import { forward } from "../src/proxy/forward";
import { downstreamResponseHeaders, upstreamRequestHeaders } from "../src/proxy/headers";
import { pathProblem } from "../src/proxy/path";
import { checkProtocol } from "../src/proxy/protocol";
import { rawPathAndQuery, upstreamUrl } from "../src/proxy/target";
import { connectionTimeouts } from "../src/proxy/timeouts";
import { compileTable } from "../src/routes/match";
import { prepareRoute } from "../src/routes/prepare";
import { createMinter } from "../src/token/mint";
import { createSigningKeys } from "../src/token/signing-key";
import { LADDER_STEPS } from "./ladder-steps";

const backend = process.env.BACKEND!;
const steps = Number(process.env.STEPS ?? 0);
const on = (name: (typeof LADDER_STEPS)[number]["id"]) => LADDER_STEPS.findIndex((step) => step.id === name) < steps;
const withoutSignal = process.env.NO_SIGNAL === "1";

const port = Number(process.env.PORT);
const config = loadConfig({
  PORT: String(port),
  HOST: "127.0.0.1",
  BACKEND_API_URL: backend,
  DATABASE_URL: join(mkdtempSync(join(tmpdir(), "authgate-ladder-")), "authgate.db"),
  BETTER_AUTH_SECRET: "bench-secret-bench-secret-bench-secret-0",
  BETTER_AUTH_URL: `http://127.0.0.1:${port}`,
  MAX_BODY_BYTES: "0",
});
// The log line goes where the gateway's goes (stderr, buffered); bench/ladder.ts discards it.
const logger = createLogger("info", { pretty: false });
const metrics = createMetrics({ openWebSockets: () => 0, authWorkerRestarts: () => 0 });
const requestLog = createRequestLog(logger, metrics);
const trustProxy = compileTrustedProxies(config.trustedProxies);
const table = compileTable(config.routes, prepareRoute, config.pages?.path);
const trustedOrigins = new Set([config.authUrl.origin, ...config.trustedOrigins]);

const auth = await startAuthWorker(config, logger, new URL("../src/auth/worker.ts", import.meta.url).href);
const signingKeys = createSigningKeys(auth);
await signingKeys.current();
const identities = createIdentityResolver({
  auth,
  mint: createMinter({ signingKeys, issuer: config.authUrl.origin, lifetimeSeconds: config.jwtLifetimeSeconds }),
  sessionCacheSeconds: config.sessionCacheSeconds,
  cacheEntries: config.sessionCacheEntries,
  onLookup: on("metrics") ? (result) => metrics.sessionLookup(result) : undefined,
});

let server: ReturnType<typeof Bun.serve>;
const timeouts = connectionTimeouts(() => server, (request) => request, 10);

server = Bun.serve({
  port,
  hostname: "127.0.0.1",
  maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  idleTimeout: 10,
  async fetch(request, bun) {
    if (on("metrics")) metrics.requestStarted();
    let target = rawPathAndQuery(request.url);
    let path = target;
    let context;
    if (on("context")) {
      context = establishContext({ headers: request.headers, peerIp: bun.requestIP(request)?.address, ownProto: "http", trustProxy });
    }
    let upstream = backend + target;
    if (on("path")) {
      const protocol = checkProtocol({ method: request.method, url: request.url, host: request.headers.get("host"), contentLength: request.headers.get("content-length"), ownHost: config.authUrl.host });
      if (!protocol.ok) return new Response("refused", { status: protocol.status });
      target = rawPathAndQuery(protocol.url);
      const queryAt = target.indexOf("?");
      path = queryAt === -1 ? target : target.slice(0, queryAt);
      if (pathProblem(path)) return new Response("bad path", { status: 400 });
      const match = table.match(path);
      if (match.kind !== "route" || match.route.kind !== "upstream") return new Response("no route", { status: 404 });
      upstream = upstreamUrl(match.route.base, false, { path, rest: match.rest, query: queryAt === -1 ? "" : target.slice(queryAt) });
    }
    if (on("csrf") && context) {
      const refused = isCrossSiteRefused({ method: request.method, origin: request.headers.get("origin"), referer: request.headers.get("referer"), trustedOrigins, ownOrigin: `${context.forwardedProto}://${context.forwardedHost}` });
      if (refused) return new Response("cross-site", { status: 403 });
    }
    let token: string | undefined;
    let setCookies: readonly string[] = [];
    if (on("identity")) {
      const identity = await identities.identify(request.headers, true);
      if (!identity) return new Response("unauthenticated", { status: 401 });
      const minted = identities.tokenFor(identity, config.authUrl.origin);
      token = typeof minted === "string" ? minted : await minted;
      setCookies = identity.setCookies;
    }
    let headers: Headers;
    if (on("headers") && context) {
      headers = upstreamRequestHeaders(request.headers, token, context, undefined);
    } else {
      headers = new Headers(request.headers);
      headers.delete("host");
    }
    if (on("timeouts")) timeouts.awaitBackend(request, config.proxyTimeoutMs);
    let response: Response;
    if (on("forward")) {
      response = await forward(request, { url: upstream, headers, headersTimeoutMs: config.proxyTimeoutMs, maxBodyBytes: 0 });
    } else {
      response = await fetch(upstream, {
        method: request.method,
        headers,
        body: request.method === "GET" || request.method === "HEAD" ? undefined : request.body,
        duplex: "half",
        redirect: "manual",
        decompress: false,
        ...(!withoutSignal && { signal: request.signal }),
      } as RequestInit);
    }
    const answer = new Response(response.body, {
      status: response.status,
      headers: on("headers") ? downstreamResponseHeaders(response.headers, setCookies) : response.headers,
    });
    if (on("log") && context) return requestLog.answered(request, path, answer, context);
    if (on("metrics") && context) metrics.requestAnswered("api", request.method, answer.status, (performance.now() - context.startedAt) / 1000);
    return answer;
  },
});

// A session to send: signed up through the worker, as the gateway's /api/auth route would.
const signUp = await auth.handle(
  "POST",
  `${config.authUrl.origin}/api/auth/sign-up/email`,
  [["content-type", "application/json"], ["origin", config.authUrl.origin]],
  new TextEncoder().encode(JSON.stringify({ email: `ladder-${crypto.randomUUID()}@example.test`, password: "correct horse battery", name: "Ladder" })).buffer as ArrayBuffer,
);
const cookie = signUp.headers
  .filter(([name]) => name.toLowerCase() === "set-cookie")
  .map(([, value]) => value.split(";")[0])
  .join("; ");
console.log(JSON.stringify({ port: server.port, cookie }));
process.on("SIGTERM", async () => {
  server.stop(true);
  await auth.close();
  process.exit(0);
});
