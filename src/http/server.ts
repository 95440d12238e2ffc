import type { BunRequest, Server, WebSocketHandler } from "bun";
import type { Config } from "../config";
import { jsonError } from "../errors";
import type { Logger } from "../ops/log";
import { rawRoutes, type RawTarget } from "../proxy/path";
import { rawPathAndQuery } from "../proxy/target";
import type { RelayData } from "../proxy/ws";

export interface ServeOptions {
  config: Config;
  idleTimeoutSeconds: number;
  /** The gateway's request handler (src/app.ts `handle`), with the target as Bun's routes saw it. */
  handle(request: Request, server: Server<RelayData>, raw: RawTarget): Promise<Response | undefined>;
  /** The answer for anything that escapes `handle`. */
  lastResort(error: unknown): Response;
  websocket: WebSocketHandler<RelayData>;
  renderMetrics(): Promise<Response>;
}

/**
 * The gateway's listeners: PORT, and METRICS_PORT when set. Bun's own error page never shows
 * (it has source lines and the working directory in it): anything that escapes gets the
 * last-resort JSON 500.
 */
export function listenOn({ config, idleTimeoutSeconds, handle, lastResort, websocket, renderMetrics }: ServeOptions) {
  const server = Bun.serve<RelayData, never>({
    port: config.port,
    hostname: config.host,
    // The gateway enforces MAX_BODY_BYTES and each route's max_body_bytes itself (with a JSON
    // 413); Bun's own limit (128 MB by default) would cut legitimate uploads.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    idleTimeout: idleTimeoutSeconds,
    // Routes see the target as sent, before Bun resolves its dot segments (rawRoutes).
    routes: Object.fromEntries(
      rawRoutes().map(({ pattern, kind }) => [
        pattern,
        (request: BunRequest, bunServer: Server<RelayData>) =>
          handle(request, bunServer, kind === "checked" ? { kind, segments: request.params } : { kind }),
      ]),
    ),
    fetch: (request, bunServer) => handle(request, bunServer, { kind: "elsewhere" }),
    error: lastResort,
    websocket,
  });
  const metricsServer =
    config.metricsPort === undefined
      ? undefined
      : Bun.serve({
          port: config.metricsPort,
          hostname: config.host,
          // request.url is relative when the Host was unusable: compare the target as a string.
          fetch: (request) => (rawPathAndQuery(request.url).split("?", 1)[0] === "/metrics" ? renderMetrics() : jsonError(404, "Not found")),
          error: lastResort,
        });
  return { server, metricsServer };
}

/**
 * Stops accepting at once and waits for the connections in flight, up to `timeoutMs`; then
 * cuts those still open.
 */
export async function drain(server: Server<RelayData>, timeoutMs: number, logger: Logger): Promise<void> {
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
