import type { Server } from "bun";
import { createIdentityResolver, type Identity, type IdentityResolver } from "./auth/identity";
import { queryHoldsApiKey } from "./auth/credential";
import { AUTH_BASE_PATH } from "./auth/paths";
import { startAuthWorker, type AuthWorker, type SupervisionOptions } from "./auth/remote";
import { ConfigError, reloadRoutes, type Config } from "./config";
import { GatewayError, jsonError } from "./errors";
import { buildApp } from "./http/elysia";
import { drain, listenOn } from "./http/server";
import { docsPlugin } from "./ops/docs";
import { createLogger, describeError, type Logger } from "./ops/log";
import { createRequestLog } from "./ops/access-log";
import { createMetrics, type Metrics } from "./ops/metrics";
import { createReadiness } from "./ops/readiness";
import { CLIENT_IP_HEADER, compileTrustedProxies, establishContext, type RequestContext } from "./ops/request-context";
import { preflight, withCors } from "./proxy/cors";
import { isCrossSiteRefused } from "./proxy/csrf";
import { upstreamRequestHeaders } from "./proxy/headers";
import { authBodyRefused, declaredBody, routeBodyRefused } from "./proxy/limits";
import { pathProblem, rawTargetProblem, type RawTarget } from "./proxy/path";
import { checkProtocol } from "./proxy/protocol";
import { rawPathAndQuery, upstreamUrl } from "./proxy/target";
import { connectionTimeouts } from "./proxy/timeouts";
import { createUpstreamProxy } from "./proxy/upstream";
import { checkHandshake, createWebSocketRelay, type RelayData } from "./proxy/ws";
import { compileTable, isGatewayPath, type RouteTable } from "./routes/match";
import { loadTemplates } from "./pages/templates";
import { createCallerCheck, identityHeadersFor, type Caller } from "./routes/caller";
import { checksOrigin, refusal } from "./routes/policy";
import { prepareRoute, type PreparedRoute, type Routed, type UpstreamTarget } from "./routes/prepare";
import type { Route } from "./routes/table";
import { createMinter } from "./token/mint";
import { createSigningKeys } from "./token/signing-key";

export interface GatewayOptions {
  logger?: Logger;
  /** Bun's idle timeout for connections that are not streaming a proxied response. @default 10 */
  idleTimeoutSeconds?: number;
  /** How often open WebSockets' sessions are re-validated. @default 30 000 */
  sessionCheckIntervalMs?: number;
  /**
   * An auth worker already starting (src/index.ts spawns it before it imports anything, so
   * Better Auth loads on the worker's thread while this one loads the proxy's modules). Without
   * it, one is started here with `authWorkerUrl` and `authSupervision`.
   */
  authWorker?: Promise<AuthWorker>;
  /** Where the auth worker's script is (see startAuthWorker). */
  authWorkerUrl?: string;
  /** Restart backoff and call deadline of the auth worker (tests shorten them). */
  authSupervision?: SupervisionOptions;
}

export interface Gateway {
  readonly app: ReturnType<typeof buildApp>;
  /** Better Auth and the database, on their own thread. */
  readonly auth: AuthWorker;
  readonly identities: IdentityResolver;
  /**
   * Bun.serve's fetch: the request's stages (see route), then the app.
   * `raw` is what listen()'s routes saw of the target as received; without it (a caller of
   * its own), only the rules on `request.url` apply.
   */
  fetch(request: Request, server: Server<RelayData>, raw?: RawTarget): Promise<Response | undefined>;
  readonly metrics: Metrics;
  /** The route table requests are matched against now. */
  readonly routes: readonly Route[];
  /**
   * Re-reads CONFIG_FILE (SIGHUP): a valid table replaces the current one at once (requests in
   * flight finish on the one they started on); an invalid one is logged, problem by problem,
   * and the current table stays.
   */
  reload(): { ok: true } | { ok: false; problems: readonly string[] };
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
  const auth = await (options.authWorker ?? startAuthWorker(config, logger, options.authWorkerUrl, options.authSupervision));
  const metrics = createMetrics({ openWebSockets: () => relay.openCount, authWorkerRestarts: () => auth.restarts });
  const signingKeys = createSigningKeys(auth);
  const identities = createIdentityResolver({
    auth,
    mint: createMinter({ signingKeys, issuer: config.authUrl.origin, lifetimeSeconds: config.jwtLifetimeSeconds }),
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

  const callerOf = createCallerCheck(identities);
  const requestLog = createRequestLog(logger, metrics);
  // CORS_ORIGINS (src/proxy/cors.ts): without it, answers go out as they are, at no cost.
  const corsOrigins = config.corsOrigins.length > 0 ? new Set(config.corsOrigins) : undefined;
  /** Where every answer but a WebSocket handshake's ends: with the CORS headers its Origin gets, then recorded. */
  const answered: typeof requestLog.answered =
    corsOrigins === undefined
      ? requestLog.answered
      : (request, path, response, context) => requestLog.answered(request, path, corsFor(request, response), context);
  function corsFor(request: Request, response: Response): Response {
    const origin = request.headers.get("origin");
    return origin === null || corsOrigins === undefined ? response : withCors(response, origin, corsOrigins);
  }
  // Replaced whole on reload; a request keeps the route it was matched to.
  const pagesPath = config.pages?.path;
  let table: RouteTable<PreparedRoute> = compileTable(config.routes, prepareRoute, pagesPath);

  const trustProxy = compileTrustedProxies(config.trustedProxies);
  const contexts = new WeakMap<Request, RequestContext>();
  const routedRequests = new WeakMap<Request, Routed>();
  // A request rebuilt at the gateway's own origin (checkProtocol) → the one Bun handed over.
  const serverRequests = new WeakMap<Request, Request>();
  const relay = createWebSocketRelay({
    logger,
    sessionCheckIntervalMs: options.sessionCheckIntervalMs ?? 30_000,
  });
  const trustedOrigins = new Set([config.authUrl.origin, ...config.trustedOrigins]);
  // Routes that read the session cookie could be ridden on by a browser on another site;
  // WebSocket handshakes are GETs but get the same check (cross-site WebSocket hijacking).
  const crossSiteRefused = (request: Request, context: RequestContext, websocket: boolean) =>
    isCrossSiteRefused({
      method: websocket ? "WEBSOCKET" : request.method,
      origin: request.headers.get("origin"),
      referer: request.headers.get("referer"),
      trustedOrigins,
      ownOrigin: `${context.forwardedProto}://${context.forwardedHost}`,
    });
  let server: Server<RelayData> | undefined;
  const timeouts = connectionTimeouts(
    () => server as Server<unknown> | undefined,
    (request) => serverRequests.get(request) ?? request,
    options.idleTimeoutSeconds ?? 10,
  );

  const app = buildApp({
    config,
    auth,
    logger,
    docs: docsPlugin(() => auth.openApiSchema(), config.pages?.path),
    // Requests that did not come through `handle` (app.handle in a test) get a context without a peer.
    contextOf: (request) =>
      contexts.get(request) ?? establishContext({ headers: request.headers, peerIp: undefined, ownProto: "http", trustProxy }),
    routedOf: (request) => routedRequests.get(request),
    callerOf,
    proxy: createUpstreamProxy({ connectionTimeouts: timeouts, metrics, logger }),
    metrics,
    readiness: createReadiness(auth, signingKeys, config.redisUrl !== undefined),
    afterSignOut: () => {
      identities.forgetSessions();
      void relay.closeEndedSessions();
    },
    templates: config.pages ? loadTemplates(config.theme.templateDir) : undefined,
    // The pages are a browser's: its cookie, never an API key.
    identify: (headers) => identities.identify(headers, false),
    crossSiteRefused: (request) => crossSiteRefused(request, contexts.get(request) ?? establishContext({ headers: request.headers, peerIp: undefined, ownProto: "http", trustProxy }), false),
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
    // A GatewayError thrown outside the app keeps its status; anything else is a 500.
    const known = error instanceof GatewayError ? error : undefined;
    const response = known ? known.toResponse() : jsonError(500, "Internal error");
    try {
      const context = request && contexts.get(request);
      if (context) response.headers.set("x-request-id", context.requestId);
      // A front-end on a listed origin can read the 500 too, rather than a bare network error.
      if (request) corsFor(request, response);
      logger.error(known?.publicMessage ?? "Unhandled error", { requestId: context?.requestId, ...describeError(error) });
      if (counted && request && !context?.outcome.answered) metrics.requestAnswered("other", request.method, known?.status ?? 500, 0);
    } catch {
      // The logger or the metrics failed too: the client still gets its answer.
    }
    return response;
  }

  /**
   * A request's path through the gateway, stage by stage; each stage either answers or hands
   * on. The README's "How a request is handled" lists the same stages.
   */
  async function route(serverRequest: Request, bunServer: Server<RelayData>, raw: RawTarget | undefined): Promise<Response | undefined> {
    // 1. Protocol: TRACE is never forwarded, and no later stage may read a Host that is
    //    missing, doubled or invalid, nor a request.url Bun could not make absolute.
    const protocol = checkProtocol({
      method: serverRequest.method,
      url: serverRequest.url,
      host: serverRequest.headers.get("host"),
      contentLength: serverRequest.headers.get("content-length"),
      ownHost: config.authUrl.host,
    });
    const request = protocol.ok && protocol.url !== serverRequest.url ? atOwnOrigin(serverRequest, protocol.url) : serverRequest;
    const target = rawPathAndQuery(protocol.ok ? protocol.url : serverRequest.url);
    const queryAt = target.indexOf("?");
    const path = queryAt === -1 ? target : target.slice(0, queryAt);

    // 2. Context: request id, client address, how the client reached the gateway.
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
      return answered(request, path, response, context);
    }

    // 3. Path rules: dot segments as sent or hidden behind encoded separators, bad encoding.
    const pathRefused = (raw && rawTargetProblem(raw)) || pathProblem(path);
    if (pathRefused) {
      logger.info("path refused", { requestId: context.requestId, reason: pathRefused });
      return answered(request, path, jsonError(400, "Bad request path"), context);
    }
    //    And no API key in the URL: URLs end up in logs, histories and Referer headers.
    if (queryAt !== -1 && queryHoldsApiKey(target.slice(queryAt))) {
      logger.info("request refused", { requestId: context.requestId, reason: "an API key in the query string" });
      return answered(request, path, jsonError(400, "API keys go in the Authorization or X-Api-Key header, never in the URL"), context);
    }

    // 4. CORS preflight (CORS_ORIGINS only): answered here, whatever the path, never forwarded
    //    and without a session; a listed origin gets 204, any other 403 (src/proxy/cors.ts).
    if (corsOrigins !== undefined && request.method === "OPTIONS") {
      const { headers } = request;
      const answer = preflight(headers.get("origin"), headers.get("access-control-request-method"), headers.get("access-control-request-headers"), corsOrigins);
      if (answer) {
        if (answer.status !== 204) logger.info("preflight refused", { requestId: context.requestId, reason: answer.status === 403 ? "an origin not in CORS_ORIGINS" : "a method or header name that is not a token" });
        return requestLog.answered(request, path, answer, context);
      }
    }

    // 5. Route match: the gateway's own paths, else the longest route of the table.
    const match = table.match(path);
    if (match.kind === "none") return answered(request, path, jsonError(404, "Not found"), context);
    if (match.kind === "ambiguous") {
      logger.info("path refused", { requestId: context.requestId, reason: "a lenient reading puts the path under another route" });
      return answered(request, path, jsonError(400, "Bad request path"), context);
    }
    if (match.kind === "gateway") {
      // Better Auth's routes and the sign-in pages' form posts: small bodies only.
      if (path.startsWith(`${AUTH_BASE_PATH}/`) || (pagesPath !== undefined && isGatewayPath(path, pagesPath) && !isGatewayPath(path))) {
        const refused = authBodyRefused(declaredBody(request));
        if (refused) return answered(request, path, refused, context);
        // Better Auth reads the client IP (rate limiter) only from a header: the gateway's, never the client's.
        request.headers.delete(CLIENT_IP_HEADER);
        if (context.clientIp) request.headers.set(CLIENT_IP_HEADER, context.clientIp);
      }
      return answered(request, path, await app.handle(request), context);
    }
    const prepared = match.route;
    const routed: Routed = { target: prepared, path, rest: match.rest, query: queryAt === -1 ? "" : target.slice(queryAt) };
    context.outcome.route = prepared.route.name;

    // 6. Limits: a declared body larger than the route takes is refused before it is read.
    const tooLarge = prepared.kind === "upstream" ? routeBodyRefused(declaredBody(request), prepared.route.maxBodyBytes) : undefined;
    if (tooLarge) return answered(request, path, tooLarge, context);

    // 7. Policy, part one: the cross-site check where a session cookie is read (a request
    //    that authenticates with a header it had to set itself, a key or a bearer token, cannot
    //    have been forged by another site).
    const websocket = prepared.kind === "upstream" && isWebSocketUpgrade(request);
    if (checksOrigin(prepared.route) && crossSiteRefused(request, context, websocket) && ridesOnCookie(request.headers)) {
      return answered(request, path, jsonError(403, "Cross-origin request refused"), context);
    }

    // 8. WebSocket: its own relay, outside the app (see src/proxy/ws.ts); browsers apply no
    //    CORS to WebSockets (the origin check above is what guards them).
    if (websocket) {
      const response = await upgradeWebSocket(request, bunServer, routed, prepared, context);
      if (!response) {
        requestLog.upgraded(request, path, context);
        return undefined;
      }
      return requestLog.answered(request, path, response, context);
    }

    // 9. The app: the caller identified (`resolve`: session, allow, JWT), then proxy or static files.
    routedRequests.set(request, routed);
    return answered(request, path, await app.handle(request), context);
  }

  /** The WebSocket stage: the handshake checked, the caller let through, the backend socket opened and relayed. */
  async function upgradeWebSocket(request: Request, bunServer: Server<RelayData>, routed: Routed, target: UpstreamTarget, context: RequestContext) {
    const handshake = checkHandshake(request.headers);
    if ("problem" in handshake) {
      logger.info("WebSocket handshake refused", { requestId: context.requestId, reason: handshake.problem });
      return jsonError(400, "Invalid WebSocket handshake");
    }
    const { route } = target;
    let caller: Caller;
    try {
      caller = await callerOf(route, request.headers);
    } catch (error) {
      // A refusal (401, 403) or the auth service down (503): answered like any request's.
      if (!(error instanceof GatewayError)) throw error;
      if (error.status >= 500) logger.error(error.publicMessage, { requestId: context.requestId, ...describeError(error) });
      return error.toResponse();
    }
    const { identity, token } = caller;
    if (identity) context.outcome.userId = identity.claims.sub;
    timeouts.awaitBackend(request, route.timeoutMs);
    return relay.upgrade(request, bunServer, {
      url: upstreamUrl(target.wsBase, route.stripPrefix, routed),
      headers: upstreamRequestHeaders(request.headers, token, context, identityHeadersFor(route, identity)),
      protocols: handshake.protocols,
      requestId: context.requestId,
      // An anonymous socket (an `optional` or `none` route) has no session to re-check.
      session: identity ? socketSession(identity, request.headers.get("cookie") ?? "", route) : undefined,
      openTimeoutMs: route.timeoutMs,
    });
  }

  /**
   * What the relay re-checks: the session (or key) still valid, and the route's policy still
   * letting its current claims in (a role taken away closes an admin route's socket). Sockets
   * of one session on one route share one check.
   */
  function socketSession(identity: Identity, cookie: string, route: Route) {
    const { claims } = identity;
    return {
      id: `${route.name}\n${claims.auth_method === "api_key" ? `key:${claims.key_id}` : `session:${claims.sid}`}`,
      async isValid() {
        const current = await identities.currentClaims(identity, cookie);
        return current !== null && refusal(route, current) === undefined;
      },
    };
  }

  /** HTTP/1.0 without Host: the same request at the gateway's own origin; Bun's server calls keep the one Bun handed over. */
  function atOwnOrigin(serverRequest: Request, url: string): Request {
    const headers = new Headers(serverRequest.headers);
    headers.set("host", config.authUrl.host);
    const request = new Request(url, {
      method: serverRequest.method,
      headers,
      body: serverRequest.body,
      duplex: "half",
      signal: serverRequest.signal,
    } as RequestInit);
    serverRequests.set(request, serverRequest);
    return request;
  }

  let metricsServer: Server<undefined> | undefined;
  let stopping: Promise<void> | undefined;

  const gateway: Gateway = {
    app,
    auth,
    identities,
    metrics,
    fetch: handle,
    get routes() {
      return table.routes;
    },
    reload() {
      if (config.configFile === undefined) {
        logger.info("reload: no CONFIG_FILE, nothing to re-read");
        return { ok: true };
      }
      try {
        const routes = reloadRoutes(config);
        table = compileTable(routes, prepareRoute, pagesPath);
        metrics.configReloaded("ok");
        logger.info("configuration reloaded", { routes: routes.length });
        return { ok: true };
      } catch (error) {
        metrics.configReloaded("error");
        const problems = error instanceof ConfigError ? error.problems : [`${describeError(error).error}`];
        for (const problem of problems) logger.error("configuration not reloaded: the current routes stay", { problem });
        return { ok: false, problems };
      }
    },
    listen() {
      const listening = listenOn({
        config,
        idleTimeoutSeconds: options.idleTimeoutSeconds ?? 10,
        handle,
        lastResort: (error) => lastResort(undefined, error),
        websocket: relay.websocket,
        renderMetrics: () => metrics.render(),
      });
      server = listening.server;
      metricsServer = listening.metricsServer;
      return server;
    },
    shutdown(timeoutMs) {
      stopping ??= (async () => {
        clearInterval(keyCheck);
        relay.closeAll(1001, "Gateway shutting down");
        if (server) await drain(server, timeoutMs, logger);
        await metricsServer?.stop(true);
        await auth.close();
      })();
      return stopping;
    },
    close: () => gateway.shutdown(0),
  };
  return gateway;
}

/**
 * Whether a cross-site request could ride on the browser's cookies: whenever it carries any.
 * A client that authenticates with a key or a bearer token and sends no cookie (a server, a
 * native app, a front-end on another origin using bearer tokens) is not checked; one that
 * sends cookies is, whatever else it sends, since its other cookies reach the upstream too.
 */
function ridesOnCookie(headers: Headers): boolean {
  return headers.has("cookie");
}

function isWebSocketUpgrade(request: Request): boolean {
  return request.method === "GET" && request.headers.get("upgrade")?.toLowerCase() === "websocket";
}
