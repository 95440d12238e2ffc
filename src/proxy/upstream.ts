import { BadGateway, ClientClosedRequest, GatewayTimeout } from "../errors";
import { describeError, type Logger } from "../ops/log";
import type { Metrics } from "../ops/metrics";
import type { RequestContext } from "../ops/request-context";
import { relayedBody } from "./body";
import { forward } from "./forward";
import { downstreamResponseHeaders } from "./headers";
import type { ConnectionTimeouts } from "./timeouts";

export interface UpstreamDeps {
  connectionTimeouts: ConnectionTimeouts;
  metrics: Metrics;
  logger: Logger;
}

export interface UpstreamCall {
  url: string;
  /** The request headers for the upstream (upstreamRequestHeaders). */
  headers: Headers;
  timeoutMs: number;
  maxBodyBytes: number;
  /** Session-refresh cookies for the client. */
  setCookies: readonly string[];
}

/**
 * The proxy stage: the request to the upstream with its body streamed, and the upstream's
 * answer back with its body streamed (a small one with a known length read whole, so that one
 * cut short is a clean 502). Failures are thrown as GatewayErrors (502, 504, 413, 499).
 */
export function createUpstreamProxy({ connectionTimeouts, metrics, logger }: UpstreamDeps) {
  return async function proxy(request: Request, call: UpstreamCall, context: RequestContext): Promise<Response> {
    connectionTimeouts.awaitBackend(request, call.timeoutMs);
    const sentAt = performance.now();
    let upstream: Response;
    try {
      upstream = await forward(request, {
        url: call.url,
        headers: call.headers,
        headersTimeoutMs: call.timeoutMs,
        maxBodyBytes: call.maxBodyBytes,
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
        onEnd: eventStream ? () => connectionTimeouts.restore(request, call.timeoutMs) : undefined,
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
      headers: downstreamResponseHeaders(upstream.headers, call.setCookies),
    });
  };
}

export type UpstreamProxy = ReturnType<typeof createUpstreamProxy>;

function isEventStream(headers: Headers): boolean {
  return headers.get("content-type")?.toLowerCase().startsWith("text/event-stream") ?? false;
}
