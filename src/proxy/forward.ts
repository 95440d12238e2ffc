import { BadGateway, ClientClosedRequest, GatewayError, GatewayTimeout } from "../errors";
import { BodyTooLarge, meteredBody } from "./body";

export interface ForwardRequest {
  url: string;
  headers: Headers;
  /** Time the backend has, once the request body is sent, to send its response headers. */
  headersTimeoutMs: number;
  /** Largest body streamed to the backend; 0 means no limit. */
  maxBodyBytes: number;
}

export class PayloadTooLarge extends GatewayError {
  constructor() {
    super(413, "Request body too large");
  }
}

/** Methods whose requests carry no body to stream. */
const BODYLESS = new Set(["GET", "HEAD"]);

/**
 * Sends the request to the backend with its body streamed (not buffered) and returns
 * the backend's response as received: not decompressed, redirects not followed.
 * The client's abort signal is passed along so a client that leaves cancels the
 * backend request too.
 */
export async function forward(request: Request, options: ForwardRequest): Promise<Response> {
  const { url, headers, headersTimeoutMs, maxBodyBytes } = options;
  // The upstream request is cancelled when the client goes away (for the whole exchange,
  // body included) or when the backend misses its header deadline. One controller fed by a
  // listener: AbortSignal.any([...]) per request doubled the proxy's p99 latency under load.
  // A client that is gone already (it left, or Bun closed its connection, as it does for
  // pipelined requests) during the session lookup: its abort event has fired, and a listener
  // added now would never run, so the backend request would go out for nobody.
  if (request.signal.aborted) throw new ClientClosedRequest();
  const upstream = new AbortController();
  const cancelUpstream = () => upstream.abort();
  request.signal.addEventListener("abort", cancelUpstream, { once: true });

  // A deadline only for the response headers, started once the client has sent its whole
  // body: AbortSignal.timeout would also cut a long upload, a long download or a quiet
  // event stream.
  let timer: Timer | undefined;
  let answered = false;
  let timedOut = false;
  const startDeadline = () => {
    // A backend may answer before the upload ends; then there is no deadline left to start.
    if (!answered) {
      timer ??= setTimeout(() => {
        timedOut = true;
        cancelUpstream();
      }, headersTimeoutMs);
    }
  };

  let body: ReadableStream<Uint8Array> | null = null;
  if (!BODYLESS.has(request.method) && request.body) {
    body = meteredBody(request.body, maxBodyBytes, startDeadline);
  } else {
    startDeadline();
  }

  try {
    return await fetch(url, {
      method: request.method,
      headers,
      body,
      duplex: "half", // stream the request body instead of buffering it
      redirect: "manual",
      decompress: false,
      signal: upstream.signal,
    });
  } catch (cause) {
    if (timedOut) throw new GatewayTimeout();
    if (isBodyTooLarge(cause)) throw new PayloadTooLarge();
    if (request.signal.aborted) throw new ClientClosedRequest();
    throw new BadGateway(cause);
  } finally {
    answered = true;
    clearTimeout(timer);
  }
}

function isBodyTooLarge(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) if (e instanceof BodyTooLarge) return true;
  return false;
}
