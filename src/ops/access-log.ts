import { AUTH_BASE_PATH } from "../auth/paths";
import type { Logger } from "./log";
import type { Metrics } from "./metrics";
import type { RequestContext } from "./request-context";

/**
 * Where every request ends: counted once in the request metrics and logged in one line, by
 * the route's name ("auth" for Better Auth, "other" for the gateway's own paths and requests
 * refused before a route was matched).
 */
export function createRequestLog(logger: Logger, metrics: Metrics) {
  function record(request: Request, path: string, status: number, context: RequestContext, bytesOut: string | null) {
    context.outcome.answered = true;
    const seconds = (performance.now() - context.startedAt) / 1000;
    const route = context.outcome.route ?? (path.startsWith(`${AUTH_BASE_PATH}/`) ? "auth" : "other");
    metrics.requestAnswered(route, request.method, status, seconds);
    // One line per request: no query string, cookie or token. Sizes are the declared ones
    // (a streamed body of unknown length has none).
    logger.info("request", {
      requestId: context.requestId,
      method: request.method,
      path,
      route: context.outcome.route,
      status,
      durationMs: Math.round(seconds * 100_000) / 100,
      upstreamMs: context.outcome.upstreamMs,
      userId: context.outcome.userId,
      clientIp: context.clientIp,
      bytesIn: numberOrUndefined(request.headers.get("content-length")),
      bytesOut: numberOrUndefined(bytesOut),
    });
  }

  return {
    /** The response, with the request id, once recorded. */
    answered(request: Request, path: string, response: Response, context: RequestContext): Response {
      response.headers.set("x-request-id", context.requestId);
      record(request, path, response.status, context, response.headers.get("content-length"));
      return response;
    },
    /** A WebSocket handshake answered by Bun with 101. */
    upgraded(request: Request, path: string, context: RequestContext): void {
      record(request, path, 101, context, null);
    },
  };
}

function numberOrUndefined(value: string | null): number | undefined {
  return value === null ? undefined : Number(value);
}
