import { timingSafeEqual } from "node:crypto";
import type { BunRequest, Server } from "bun";
import { Elysia } from "elysia";
import { AUTH_BASE_PATH, SESSION_ENDING_ROUTES } from "./auth/paths";
import { createIdentityResolver, type IdentityResolver } from "./auth/identity";
import { startAuthWorker, type AuthWorker, type SupervisionOptions } from "./auth/remote";
import type { Config } from "./config";
import { AuthenticationRequired, BadGateway, ClientClosedRequest, GatewayError, GatewayTimeout, jsonError } from "./errors";
import { createMetrics, routeClass, type Metrics } from "./ops/metrics";
import { docsPlugin } from "./ops/docs";
import { createLogger, describeError, type Logger } from "./ops/log";
import { CLIENT_IP_HEADER, compileTrustedProxies, establishContext, type RequestContext } from "./ops/request-context";
import { isCrossSiteRefused } from "./proxy/csrf";
import { relayedBody } from "./proxy/body";
import { forward } from "./proxy/forward";
import { downstreamResponseHeaders, upstreamRequestHeaders } from "./proxy/headers";
import { pathProblem, rawApiRoutes, rawTargetProblem, type RawTarget } from "./proxy/path";
import { checkProtocol } from "./proxy/protocol";
import { backendBase, rawPathAndQuery } from "./proxy/target";
import { checkHandshake, createWebSocketRelay, type RelayData } from "./proxy/ws";
import { createMinter } from "./token/mint";
import { createSigningKeys } from "./token/signing-key";

export interface GatewayOptions {
  logger?: Logger;
  /** Bun's idle timeout for connections that are not streaming a proxied response. @default 10 */
  idleTimeoutSeconds?: number;
  /** How often open WebSockets' sessions are re-validated. @default 30 000 */
  sessionCheckIntervalMs?: number;
  /** Where the auth worker's script is (see startAuthWorker). */
  authWorkerUrl?: string;
  /** Restart backoff and call deadline of the auth worker (tests shorten them). */
  authSupervision?: Omit<SupervisionOptions, "onRestart">;
}

export interface Gateway {
  readonly app: ReturnType<typeof buildApp>;
  /** Better Auth and the database, on their own thread. */
  readonly auth: AuthWorker;
  readonly identities: IdentityResolver;
  /**
   * Bun.serve's fetch: request context, path rules, WebSocket upgrades, then the app.
   * `raw` is what listen()'s routes saw of the target as received; without it (a caller of
   * its own), only the rules on `request.url` apply.
   */
  fetch(request: Request, server: Server<RelayData>, raw?: RawTarget): Promise<Response | undefined>;
  readonly metrics: Metrics;
  /** Starts listening on PORT (and METRICS_PORT when set). */
  listen(): Server<RelayData>;
  /**
   * Graceful stop: no new connections; WebSockets closed with 1001; requests and streams in
   * flight get up to `timeoutMs` to finish before their connections are cut; then the
   * database is closed.
   */
  shutdown(timeoutMs: number): Promise<void>;
  /** Immediate stop (tests): `shutdown(0)`. */
  close(): Promise<void>;
}

/** Bodies of Better Auth's JSON requests are small; a larger one is refused before it is read. */
const AUTH_BODY_LIMIT = 64 * 1024;

/**
 * Starts the auth worker (which opens and migrates the database) and composes the HTTP
 * server on this thread. Tests drive the result on a real port with `gateway.listen()`.
 *
 * Better Auth runs in a worker because its heap, on the proxy's thread, made every
 * young-generation collection pause the proxy for ≈5 ms (p99 several times a bare proxy's).
 * This thread answers cached sessions alone and asks the worker only on a miss.
 */
export async function createGateway(config: Config, options: GatewayOptions = {}): Promise<Gateway> {
  const logger = options.logger ?? createLogger();
  const metrics = createMetrics(() => relay.openCount);
  const auth = await startAuthWorker(config, logger, options.authWorkerUrl, {
    onRestart: () => metrics.authWorkerRestarted(),
    ...options.authSupervision,
  });
  const signingKeys = createSigningKeys(auth);
  const identities = createIdentityResolver({
    auth,
    mint: createMinter({
      signingKeys,
      issuer: config.authUrl.origin,
      audience: config.authUrl.origin,
      lifetimeSeconds: config.jwtLifetimeSeconds,
    }),
    sessionCacheSeconds: config.sessionCacheSeconds,
    cacheEntries: config.sessionCacheEntries,
    onLookup: (result) => metrics.sessionLookup(result),
  });
  // Load the key now rather than on the first request, then notice a newer key (minted by
  // another instance, or a rotation) within a minute, off the request path.
  try {
    await signingKeys.current();
  } catch (error) {
    await auth.close();
    throw error;
  }
  const keyCheck = setInterval(() => void signingKeys.refresh().catch(() => {}), 60_000);
  keyCheck.unref();

  const trustProxy = compileTrustedProxies(config.trustedProxies);
  const contexts = new WeakMap<Request, RequestContext>();
  // A request rebuilt at the gateway's own origin (checkProtocol) → the one Bun handed over.
  const serverRequests = new WeakMap<Request, Request>();
  const relay = createWebSocketRelay({
    logger,
    sessionCheckIntervalMs: options.sessionCheckIntervalMs ?? 30_000,
    async sessionIsValid(headers) {
      return (await auth.getSession(headers.get("cookie") ?? "", false)) !== null;
    },
  });
  const base = backendBase(config.backendUrl);
  const wsBase = base.replace(/^http/, "ws");
  const trustedOrigins = [config.authUrl.origin, ...config.trustedOrigins];
  // Proxied routes are authenticated by the session cookie, so a browser on another site could
  // ride on it; WebSocket handshakes are GETs but get the same check (cross-site WebSocket hijacking).
  const crossSiteRefused = (request: Request, context: RequestContext) =>
    isCrossSiteRefused({
      method: isWebSocketUpgrade(request) ? "WEBSOCKET" : request.method,
      origin: request.headers.get("origin"),
      referer: request.headers.get("referer"),
      allowedOrigins: new Set([...trustedOrigins, `${context.forwardedProto}://${context.forwardedHost}`]),
    });
  let server: Server<RelayData> | undefined;
  const timeouts = connectionTimeouts(
    () => server,
    (request) => serverRequests.get(request) ?? request,
    options.idleTimeoutSeconds ?? 10,
    config.proxyTimeoutMs,
  );

  const app = buildApp({
    config,
    auth,
    logger,
    docs: docsPlugin(await auth.openApiSchema()),
    // Requests that did not come through `handle` (app.handle in a test) get a context without a peer.
    contextOf: (request) =>
      contexts.get(request) ?? establishContext({ headers: request.headers, peerIp: undefined, ownProto: "http", trustProxy }),
    connectionTimeouts: timeouts,
    identities,
    metrics,
    readiness: async () => ({
      // While the worker is being replaced, the database cannot be asked either.
      auth: auth.state,
      database: await withTimeout(auth.ping(), 2000).then(
        () => "ok",
        () => "unreachable",
      ),
      signingKey: await withTimeout(signingKeys.current(), 2000).then(
        () => "ok",
        () => "not loadable",
      ),
      ...(config.redisUrl && {
        redis: await withTimeout(auth.pingRedis(), 2000).then(
          (up) => (up ? "ok" : "unreachable"),
          () => "unreachable",
        ),
      }),
    }),
    afterSignOut: () => {
      identities.forgetSessions();
      void relay.closeEndedSessions();
    },
  });

  async function handle(request: Request, bunServer: Server<RelayData>, raw?: RawTarget): Promise<Response | undefined> {
    metrics.requestStarted();
    try {
      return await route(request, bunServer, raw);
    } catch (error) {
      return lastResort(request, error, true);
    }
  }

  /**
   * The answer when handling a request failed in a way nothing else caught (also Bun.serve's
   * `error` handler): the generic JSON 500, never Bun's default page, which shows the source
   * and the working directory. Nothing here may throw again, logging included.
   */
  function lastResort(request: Request | undefined, error: unknown, counted = false): Response {
    // A GatewayError thrown before the app (the auth worker is down during a WebSocket
    // handshake) keeps its status; anything else is a 500.
    const known = error instanceof GatewayError ? error : undefined;
    try {
      const context = request && contexts.get(request);
      logger.error(known?.publicMessage ?? "Unhandled error", { requestId: context?.requestId, ...describeError(error) });
      if (counted && request && !context?.outcome.answered) metrics.requestAnswered("other", request.method, known?.status ?? 500, 0);
    } catch {
      // The logger or the metrics failed too: the client still gets its answer.
    }
    return known ? jsonError(known.status, known.publicMessage) : jsonError(500, "Internal error");
  }

  async function route(serverRequest: Request, bunServer: Server<RelayData>, raw: RawTarget | undefined): Promise<Response | undefined> {
    // Method and Host first: TRACE is never forwarded, and no later stage may read a Host
    // that is missing, doubled or invalid, nor a request.url Bun could not make absolute.
    const protocol = checkProtocol({
      method: serverRequest.method,
      url: serverRequest.url,
      host: serverRequest.headers.get("host"),
      contentLength: serverRequest.headers.get("content-length"),
      ownHost: config.authUrl.host,
    });
    let request = serverRequest;
    if (protocol.ok && protocol.url !== serverRequest.url) {
      // HTTP/1.0 without Host: the same request at the gateway's own origin. Bun's server calls
      // (timeouts, the client's address) keep working on the request Bun handed over.
      const headers = new Headers(serverRequest.headers);
      headers.set("host", config.authUrl.host);
      request = new Request(protocol.url, {
        method: serverRequest.method,
        headers,
        body: serverRequest.body,
        duplex: "half",
        signal: serverRequest.signal,
      } as RequestInit);
      serverRequests.set(request, serverRequest);
    }
    const target = rawPathAndQuery(protocol.ok ? protocol.url : serverRequest.url);
    const queryAt = target.indexOf("?");
    const path = queryAt === -1 ? target : target.slice(0, queryAt);
    const context = establishContext({
      headers: request.headers,
      peerIp: bunServer.requestIP(serverRequest)?.address,
      ownProto: request.url.startsWith("https:") ? "https" : "http",
      trustProxy,
    });
    contexts.set(request, context);
    if (serverRequest !== request) contexts.set(serverRequest, context);
    if (!protocol.ok) {
      logger.info("request refused", { requestId: context.requestId, reason: protocol.reason });
      const response = jsonError(protocol.status, protocol.error);
      for (const [name, value] of Object.entries(protocol.headers)) response.headers.set(name, value);
      response.headers.set("x-request-id", context.requestId);
      answered(request, path, response.status, context);
      return response;
    }
    if (path.startsWith(`${AUTH_BASE_PATH}/`)) {
      // Better Auth reads the client IP (rate limiter) only from a header: the gateway's, never the client's.
      request.headers.delete(CLIENT_IP_HEADER);
      if (context.clientIp) request.headers.set(CLIENT_IP_HEADER, context.clientIp);
    }

    const rawProblem = raw && rawTargetProblem(raw, path);
    if (rawProblem) logger.info("path refused", { requestId: context.requestId, reason: rawProblem });
    let response = rawProblem
      ? jsonError(400, "Bad request path")
      : path.startsWith("/api/")
        ? refuseBeforeRouting(request, path, config)
        : undefined;
    const proxied = path.startsWith("/api/") && !path.startsWith(`${AUTH_BASE_PATH}/`);
    if (!response && proxied && crossSiteRefused(request, context)) {
      response = jsonError(403, "Cross-origin request refused");
    }
    const handshake = !response && proxied && isWebSocketUpgrade(request) ? checkHandshake(request.headers) : undefined;
    if (handshake && "problem" in handshake) {
      logger.info("WebSocket handshake refused", { requestId: context.requestId, reason: handshake.problem });
      response = jsonError(400, "Invalid WebSocket handshake");
    } else if (handshake) {
      const identity = await identities.identify(request.headers);
      if (!identity) response = jsonError(401, "Authentication required");
      else {
        timeouts.awaitBackend(request);
        response = await relay.upgrade(request, bunServer, {
          url: wsBase + target,
          headers: upstreamRequestHeaders(request.headers, identity.token, context),
          protocols: handshake.protocols,
          requestId: context.requestId,
          sessionId: identity.sessionId,
          sessionHeaders: new Headers({ cookie: request.headers.get("cookie") ?? "" }),
          openTimeoutMs: config.proxyTimeoutMs,
        });
        if (!response) {
          context.outcome.userId = identity.userId;
          answered(request, path, 101, context);
          return undefined;
        }
      }
    }
    response ??= await app.handle(request);
    response.headers.set("x-request-id", context.requestId);
    answered(request, path, response.status, context, response.headers.get("content-length"));
    return response;
  }

  function answered(request: Request, path: string, status: number, context: RequestContext, bytesOut?: string | null) {
    context.outcome.answered = true;
    const seconds = (performance.now() - context.startedAt) / 1000;
    metrics.requestAnswered(routeClass(path), request.method, status, seconds);
    // One line per request: no query string, cookie or token. Sizes are the declared ones
    // (a streamed body of unknown length has none).
    logger.info("request", {
      requestId: context.requestId,
      method: request.method,
      path,
      status,
      durationMs: Math.round(seconds * 100_000) / 100,
      upstreamMs: context.outcome.upstreamMs,
      userId: context.outcome.userId,
      clientIp: context.clientIp,
      bytesIn: numberOrUndefined(request.headers.get("content-length")),
      bytesOut: numberOrUndefined(bytesOut ?? null),
    });
  }

  let metricsServer: Server<undefined> | undefined;
  let stopping: Promise<void> | undefined;

  const gateway: Gateway = {
    app,
    auth,
    identities,
    metrics,
    fetch: handle,
    listen() {
      server = Bun.serve<RelayData, never>({
        port: config.port,
        hostname: config.host,
        // The gateway enforces MAX_BODY_BYTES itself (with a JSON 413); Bun's own limit
        // (128 MB by default) would cut legitimate uploads.
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        idleTimeout: options.idleTimeoutSeconds ?? 10,
        // Routes see the target as sent, before Bun resolves its dot segments (rawApiRoutes).
        routes: Object.fromEntries(
          rawApiRoutes().map(({ pattern, kind }) => [
            pattern,
            (request: BunRequest, bunServer: Server<RelayData>) =>
              handle(request, bunServer, kind === "api" ? { kind, segments: request.params } : { kind }),
          ]),
        ),
        fetch: (request, bunServer) => handle(request, bunServer, { kind: "elsewhere" }),
        // Last resort for anything that escapes `handle`: never Bun's default error page.
        error: (error) => lastResort(undefined, error),
        websocket: relay.websocket,
      });
      if (config.metricsPort !== undefined) {
        metricsServer = Bun.serve({
          port: config.metricsPort,
          hostname: config.host,
          // request.url is relative when the Host was unusable: compare the target as a string.
          fetch: (request) => (rawPathAndQuery(request.url).split("?", 1)[0] === "/metrics" ? metrics.render() : jsonError(404, "Not found")),
          error: (error) => lastResort(undefined, error),
        });
      }
      return server;
    },
    shutdown(timeoutMs) {
      stopping ??= (async () => {
        clearInterval(keyCheck);
        relay.closeAll(1001, "Gateway shutting down");
        if (server) {
          // stop(false) stops accepting at once and resolves when the last connection is done.
          const drained = server.stop(false);
          let timer: Timer | undefined;
          const deadline = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
          if ((await Promise.race([drained, deadline])) === "timeout") {
            if (timeoutMs > 0) logger.warn("shutdown timeout: closing connections still open", { timeoutMs });
            await server.stop(true);
          }
          clearTimeout(timer);
        }
        await metricsServer?.stop(true);
        await auth.close();
      })();
      return stopping;
    },
    close: () => gateway.shutdown(0),
  };
  return gateway;
}

interface ConnectionTimeouts {
  /** Lets the connection wait for the backend's headers up to PROXY_TIMEOUT_MS. */
  awaitBackend(request: Request): void;
  /** Lifts the idle timeout while an event stream streams. */
  liftWhileStreaming(request: Request): void;
  /** Puts the idle timeout back once the event stream has ended. */
  restore(request: Request): void;
}

/**
 * Bun closes a connection after `idleSeconds` without traffic, including while a handler is
 * still waiting for the backend, and including a quiet event stream. A proxied request gets
 * enough idle time for the backend's header deadline (so the client sees the backend's answer
 * or a 504, never a reset); an event stream gets no idle limit while it streams. Bun keeps a
 * changed timeout on the keep-alive socket, so the stream's is restored when it ends (a client
 * that leaves closes the socket, so nothing is left to restore then).
 */
function connectionTimeouts(
  server: () => Server<RelayData> | undefined,
  serverRequest: (request: Request) => Request,
  idleSeconds: number,
  proxyTimeoutMs: number,
): ConnectionTimeouts {
  const backendWaitSeconds = Math.max(idleSeconds, Math.ceil(proxyTimeoutMs / 1000) + 1);
  return {
    awaitBackend(request) {
      server()?.timeout(serverRequest(request), backendWaitSeconds);
    },
    liftWhileStreaming(request) {
      server()?.timeout(serverRequest(request), 0);
    },
    restore(request) {
      server()?.timeout(serverRequest(request), backendWaitSeconds);
    },
  };
}

function isEventStream(headers: Headers): boolean {
  return headers.get("content-type")?.toLowerCase().startsWith("text/event-stream") ?? false;
}

function isWebSocketUpgrade(request: Request): boolean {
  return request.method === "GET" && request.headers.get("upgrade")?.toLowerCase() === "websocket";
}

/** Answers that need neither a session nor the backend: bad paths and oversized bodies. */
function refuseBeforeRouting(request: Request, path: string, config: Config): Response | undefined {
  if (pathProblem(path)) return jsonError(400, "Bad request path");
  const declared = request.headers.get("content-length");
  const length = declared === null ? undefined : Number(declared);
  if (path.startsWith(`${AUTH_BASE_PATH}/`)) {
    if (length !== undefined && length > AUTH_BODY_LIMIT) return jsonError(413, "Request body too large");
    // Better Auth reads the whole body into memory, so it must announce its size.
    if (length === undefined && request.body !== null && request.headers.has("transfer-encoding")) {
      return jsonError(411, "Content-Length required");
    }
  } else if (config.maxBodyBytes > 0 && length !== undefined && length > config.maxBodyBytes) {
    return jsonError(413, "Request body too large");
  }
  return undefined;
}

function numberOrUndefined(value: string | null): number | undefined {
  return value === null ? undefined : Number(value);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: Timer;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("timeout")), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** Compares secrets without leaking, through timing, how much of a guess was right. */
function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

interface AppDeps {
  config: Config;
  auth: AuthWorker;
  logger: Logger;
  docs: ReturnType<typeof docsPlugin>;
  contextOf(request: Request): RequestContext;
  connectionTimeouts: ConnectionTimeouts;
  identities: IdentityResolver;
  metrics: Metrics;
  /** Each dependency's state for /readyz: "ok" or what is wrong. */
  readiness(): Promise<Record<string, string>>;
  /** After a sign-out or revocation through this instance: its cached sessions are dropped. */
  afterSignOut(): void;
}

function buildApp(deps: AppDeps) {
  const { auth, logger } = deps;
  // Elysia finds the path by searching for "/" from index 11 unless told otherwise, which skips
  // into the path when the Host is shorter than 4 characters (`Host: x` made Elysia route
  // `/v1/api/items` as `/api/items`). From index 7, the first "/" after "http://" is always the
  // path's. The gateway serves plain HTTP only (TLS ends at the proxy in front of it).
  return new Elysia({ name: "authgate", handler: { standardHostname: false } })
    .onError(function mapErrorToJson({ error, code, request }) {
      const requestId = deps.contextOf(request).requestId;
      const target = rawPathAndQuery(request.url);
      const path = target.split("?", 1)[0];
      if (error instanceof GatewayError) {
        if (error.status >= 500) logger.error(error.publicMessage, { requestId, method: request.method, path, ...describeError(error) });
        return jsonError(error.status, error.publicMessage);
      }
      if (code === "NOT_FOUND") return jsonError(404, "Not found");
      logger.error("Unhandled error", { requestId, method: request.method, path, ...describeError(error) });
      return jsonError(500, "Internal error");
    })
    .get("/healthz", () => ({ status: "ok" }))
    .get("/readyz", async function readiness() {
      const checks = await deps.readiness();
      const ready = Object.values(checks).every((check) => check === "ok");
      return new Response(JSON.stringify({ status: ready ? "ready" : "not ready", checks }), {
        status: ready ? 200 : 503,
        headers: { "content-type": "application/json; charset=utf-8" },
      });
    })
    .get("/metrics", function metricsForBearer({ request }) {
      // On the public port only for holders of METRICS_TOKEN; otherwise it does not exist here.
      const token = deps.config.metricsToken;
      const presented = request.headers.get("authorization")?.replace(/^Bearer /, "") ?? "";
      if (!token || !constantTimeEqual(presented, token)) return jsonError(404, "Not found");
      return deps.metrics.render();
    })
    .use(deps.docs)
    // Better Auth gets the untouched request: `parse: 'none'` keeps Elysia from reading
    // the body, and a wildcard route (not `.mount`) avoids copying the request.
    .all(
      `${AUTH_BASE_PATH}/*`,
      async function betterAuth({ request }) {
        const body = request.body ? await request.arrayBuffer() : null; // ≤ 64 KB, checked in route()
        const answer = await auth.handle(request.method, request.url, [...request.headers], body);
        if (answer.status < 300 && SESSION_ENDING_ROUTES.test(new URL(request.url).pathname)) deps.afterSignOut();
        return new Response(answer.body, { status: answer.status, headers: answer.headers });
      },
      { parse: "none" },
    )
    .use(proxyRoutes(deps));
}

function proxyRoutes({ config, identities, contextOf, connectionTimeouts, metrics, logger }: AppDeps) {
  const base = backendBase(config.backendUrl);
  return new Elysia({ name: "authgate/proxy" })
    .resolve(async function authenticateCaller({ request }) {
      const context = contextOf(request);
      const identity = await identities.identify(request.headers);
      if (!identity) throw new AuthenticationRequired();
      return { identity, context };
    })
    .all(
      "/api/*",
      async function proxyToBackend({ request, identity, context }) {
        context.outcome.userId = identity.userId;
        connectionTimeouts.awaitBackend(request);
        const sentAt = performance.now();
        let upstream: Response;
        try {
          upstream = await forward(request, {
            url: base + rawPathAndQuery(request.url),
            headers: upstreamRequestHeaders(request.headers, identity.token, context),
            headersTimeoutMs: config.proxyTimeoutMs,
            maxBodyBytes: config.maxBodyBytes,
          });
        } catch (error) {
          if (error instanceof BadGateway || error instanceof GatewayTimeout) metrics.upstreamError(error.kind);
          throw error;
        } finally {
          context.outcome.upstreamMs = Math.round((performance.now() - sentAt) * 100) / 100;
        }
        // An event stream has no idle limit while it streams; the limit comes back when it ends.
        const eventStream = upstream.body !== null && isEventStream(upstream.headers);
        if (eventStream) connectionTimeouts.liftWhileStreaming(request);
        let body: Awaited<ReturnType<typeof relayedBody>>;
        try {
          body = await relayedBody(upstream, {
            stream: eventStream,
            onEnd: eventStream ? () => connectionTimeouts.restore(request) : undefined,
            onError(error) {
              // A client that went away aborted the backend's request (and so its body): not the backend's failure.
              if (request.signal.aborted) return;
              metrics.upstreamError("reset");
              logger.warn("backend failed mid-body", { requestId: context.requestId, ...describeError(error) });
            },
          });
        } catch (cause) {
          // A small body read whole was cut short: nothing has been sent yet, so the client gets a clean answer.
          throw request.signal.aborted ? new ClientClosedRequest() : new BadGateway(cause);
        }
        // A Response built here (not Elysia's `set`) is passed to Bun untouched, so a
        // chunked or compressed body streams through byte for byte.
        return new Response(body, {
          status: upstream.status,
          statusText: upstream.statusText,
          headers: downstreamResponseHeaders(upstream.headers, identity.setCookies),
        });
      },
      { parse: "none" },
    );
}
