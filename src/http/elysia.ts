import { timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";
import { AUTH_BASE_PATH, IDENTITY_CHANGING_ROUTES } from "../auth/paths";
import type { AuthWorker } from "../auth/remote";
import type { Config } from "../config";
import { GatewayError, jsonError } from "../errors";
import type { docsPlugin } from "../ops/docs";
import { describeError, type Logger } from "../ops/log";
import type { Metrics } from "../ops/metrics";
import type { RequestContext } from "../ops/request-context";
import { upstreamRequestHeaders } from "../proxy/headers";
import { upstreamUrl } from "../proxy/target";
import type { UpstreamProxy } from "../proxy/upstream";
import { identityHeadersFor, type CallerCheck } from "../routes/caller";
import type { Routed } from "../routes/prepare";
import type { Identity } from "../auth/identity";
import { createRefusalPages, pagesPlugin } from "../pages";
import { isNavigation } from "../pages/navigation";
import type { Templates } from "../pages/templates";
import { rawPathAndQuery } from "../proxy/target";

export interface AppDeps {
  config: Config;
  auth: AuthWorker;
  logger: Logger;
  docs: ReturnType<typeof docsPlugin>;
  contextOf(request: Request): RequestContext;
  /** The route the pipeline matched for this request (undefined: a gateway path, or none). */
  routedOf(request: Request): Routed | undefined;
  callerOf: CallerCheck;
  proxy: UpstreamProxy;
  metrics: Metrics;
  readiness(): Promise<Record<string, string>>;
  /** After a sign-out or revocation through this instance: its cached sessions are dropped. */
  afterSignOut(): void;
  /** The sign-in pages' templates; undefined: PAGES=off. */
  templates: Templates | undefined;
  identify(headers: Headers): Promise<Identity | null>;
  /** The gateway's Origin check for an unsafe request (the pages' form posts). */
  crossSiteRefused(request: Request): boolean;
}

/**
 * The Elysia app: the gateway's own routes (health, readiness, metrics, docs, Better Auth),
 * then one wildcard for the route table, where the caller is identified in `resolve` and the
 * request is proxied or served from disk. Which route a request belongs to was decided by the
 * pipeline before (src/app.ts); the table can be replaced on reload, Elysia's routes cannot.
 */
export function buildApp(deps: AppDeps) {
  const { auth, logger } = deps;
  const pages = deps.config.pages && deps.templates ? { templates: deps.templates } : undefined;
  const refusalPage = pages && createRefusalPages({ config: deps.config, templates: pages.templates, identify: deps.identify });
  // Elysia finds the path by searching for "/" from index 11 unless told otherwise, which skips
  // into the path when the Host is shorter than 4 characters (`Host: x` made Elysia route
  // `/v1/api/items` as `/api/items`). From index 7, the first "/" after "http://" is always the
  // path's. The gateway serves plain HTTP only (TLS ends at the proxy in front of it).
  // strictPath: `/healthz/` is not `/healthz`. The table decided which paths are the gateway's
  // (src/routes/match.ts); Elysia's lenient trailing slash would answer `/healthz/` with the
  // health check although the table routed it to a route.
  return new Elysia({ name: "authgate", strictPath: true, handler: { standardHostname: false } })
    .onError(async function mapErrorToJson({ error, code, request, set }) {
      // Every answer below is a Response with its own status. Elysia rebuilds a returned
      // Response (a second Response, the headers merged) whenever `set.status` is not 200, and
      // it has set the error's status there: a second construction per 401 (≈16% of its time).
      set.status = 200;
      const requestId = deps.contextOf(request).requestId;
      if (error instanceof GatewayError) {
        if (error.status >= 500) logger.error(error.publicMessage, { requestId, method: request.method, ...describeError(error) });
        // A browser navigation refused for want of a session (or of the route's allow) gets the
        // sign-in page (or a readable 403) instead of JSON: src/pages/index.ts.
        if (refusalPage && (error.status === 401 || error.status === 403) && isNavigation(request.method, request.headers.get("accept"))) {
          const page = await refusalPage(error, request, rawPathAndQuery(request.url));
          if (page) return page;
        }
        return error.toResponse();
      }
      if (code === "NOT_FOUND") return jsonError(404, "Not found");
      logger.error("Unhandled error", { requestId, method: request.method, ...describeError(error) });
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
        const body = request.body ? await request.arrayBuffer() : null; // ≤ 64 KB, checked before
        const answer = await auth.handle(request.method, request.url, [...request.headers], body);
        // Sign-outs, revocations, bans, role changes and key changes: cached identities go.
        if (answer.status < 300 && IDENTITY_CHANGING_ROUTES.test(new URL(request.url).pathname)) deps.afterSignOut();
        return new Response(answer.body, { status: answer.status, headers: answer.headers });
      },
      { parse: "none" },
    )
    .use(
      pages
        ? pagesPlugin({
            config: deps.config,
            templates: pages.templates,
            auth,
            logger,
            clientIp: (request) => deps.contextOf(request).clientIp,
            requestId: (request) => deps.contextOf(request).requestId,
            crossSiteRefused: deps.crossSiteRefused,
            identify: deps.identify,
            afterSignOut: deps.afterSignOut,
          })
        : new Elysia({ name: "authgate/pages" }),
    )
    .use(tableRoutes(deps));
}

function tableRoutes({ callerOf, contextOf, routedOf, proxy }: AppDeps) {
  return new Elysia({ name: "authgate/routes" })
    .resolve(async function identifyCaller({ request }) {
      const routed = routedOf(request);
      // A path the gateway owns that none of its routes answers (`/swaggerx`, POST /healthz).
      if (!routed) throw new GatewayError(404, "Not found");
      // The session, the route's policy, and the JWT for its audience (src/routes/caller.ts).
      const { identity, token } = await callerOf(routed.target.route, request.headers);
      const context = contextOf(request);
      if (identity) context.outcome.userId = identity.claims.sub;
      return { routed, identity, token, context };
    })
    .all(
      "/*",
      async function serveRoute({ request, routed, identity, token, context }) {
        const { target } = routed;
        const setCookies = identity?.setCookies ?? [];
        if (target.kind === "static") {
          const response = await target.files.serve(request, routed.rest);
          for (const cookie of setCookies) response.headers.append("set-cookie", cookie);
          return response;
        }
        const { route } = target;
        return proxy(
          request,
          {
            url: upstreamUrl(target.base, route.stripPrefix, routed),
            headers: upstreamRequestHeaders(request.headers, token, context, identityHeadersFor(route, identity)),
            timeoutMs: route.timeoutMs,
            maxBodyBytes: route.maxBodyBytes,
            setCookies,
          },
          context,
        );
      },
      // The table's routes are the upstreams' business, not part of the gateway's API docs.
      { parse: "none", detail: { hide: true } },
    );
}

/** Compares secrets without leaking, through timing, how much of a guess was right. */
function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
