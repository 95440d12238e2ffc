import { Elysia } from "elysia";
import { AUTH_BASE_PATH, createAuth, migrate, type Auth } from "./auth";
import { identify } from "./auth/identity";
import { resolveAuthSecret } from "./auth/secret";
import type { Config } from "./config";
import { openDatabase, type GatewayDatabase } from "./db";
import { AuthenticationRequired, GatewayError, jsonError } from "./errors";
import { docsPlugin } from "./ops/docs";
import { createLogger, describeError, type Logger } from "./ops/log";
import { downstreamResponseHeaders, upstreamRequestHeaders } from "./proxy/headers";
import { forward } from "./proxy/forward";
import { backendBase, rawPathAndQuery } from "./proxy/target";

export interface GatewayOptions {
  logger?: Logger;
}

export interface Gateway {
  readonly app: ReturnType<typeof buildApp>;
  readonly auth: Auth;
  readonly db: GatewayDatabase;
  close(): Promise<void>;
}

/**
 * Opens the database, migrates it, and composes the HTTP app. Tests drive the result with
 * `gateway.app.handle(request)` or `gateway.app.listen(0)`.
 */
export async function createGateway(config: Config, options: GatewayOptions = {}): Promise<Gateway> {
  const logger = options.logger ?? createLogger();
  const db = openDatabase(config.databaseUrl);
  try {
    const secret = resolveAuthSecret(config.authSecret, db.dataDir, logger.warn);
    const auth = createAuth({ config, db, secret });
    await migrate(auth);
    const app = buildApp({ config, auth, logger, docs: await docsPlugin(auth) });
    return {
      app,
      auth,
      db,
      async close() {
        // Elysia's stop() prints a stack trace when the app never listened (migrate, app.handle).
        if (app.server) await app.stop(true);
        await db.close();
      },
    };
  } catch (error) {
    await db.close();
    throw error;
  }
}

interface AppDeps {
  config: Config;
  auth: Auth;
  logger: Logger;
  docs: Awaited<ReturnType<typeof docsPlugin>>;
}

function buildApp({ config, auth, logger, docs }: AppDeps) {
  return new Elysia({ name: "authgate" })
    .onError(function mapErrorToJson({ error, code, request }) {
      if (error instanceof GatewayError) {
        if (error.status >= 500) {
          logger.error(error.publicMessage, { method: request.method, path: new URL(request.url).pathname, ...describeError(error) });
        }
        return jsonError(error.status, error.publicMessage);
      }
      if (code === "NOT_FOUND") return jsonError(404, "Not found");
      logger.error("Unhandled error", { method: request.method, path: new URL(request.url).pathname, ...describeError(error) });
      return jsonError(500, "Internal error");
    })
    .get("/healthz", () => ({ status: "ok" }))
    .use(docs)
    // Better Auth gets the untouched request: `parse: 'none'` keeps Elysia from reading
    // the body, and a wildcard route (not `.mount`) avoids copying the request.
    .all(`${AUTH_BASE_PATH}/*`, ({ request }) => auth.handler(request), { parse: "none" })
    .use(proxyRoutes({ config, auth }));
}

function proxyRoutes({ config, auth }: Pick<AppDeps, "config" | "auth">) {
  const base = backendBase(config.backendUrl);
  return new Elysia({ name: "authgate/proxy" })
    .resolve(async function authenticateCaller({ request }) {
      const identity = await identify(auth, request.headers);
      if (!identity) throw new AuthenticationRequired();
      return { identity };
    })
    .all(
      "/api/*",
      async function proxyToBackend({ request, identity, server }) {
        const headers = upstreamRequestHeaders(request.headers, identity.token, {
          clientIp: server?.requestIP(request)?.address,
          proto: new URL(request.url).protocol.slice(0, -1),
          host: request.headers.get("host") ?? config.authUrl.host,
        });
        const upstream = await forward(request, {
          url: base + rawPathAndQuery(request.url),
          headers,
          headersTimeoutMs: config.proxyTimeoutMs,
        });
        // A Response built here (not Elysia's `set`) is passed to Bun untouched, so a
        // chunked or compressed body streams through byte for byte.
        return new Response(upstream.body, {
          status: upstream.status,
          statusText: upstream.statusText,
          headers: downstreamResponseHeaders(upstream.headers, identity.setCookies),
        });
      },
      { parse: "none" },
    );
}
