import { BadGateway, GatewayTimeout } from "../errors";

export interface ForwardRequest {
  url: string;
  headers: Headers;
  /** Time the backend has to send its response headers; the body may take longer. */
  headersTimeoutMs: number;
}

/** Methods whose requests carry no body to stream. */
const BODYLESS = new Set(["GET", "HEAD"]);

/**
 * Sends the request to the backend with its body streamed (not buffered) and returns
 * the backend's response as received: not decompressed, redirects not followed.
 * The client's abort signal is passed along so a client that leaves cancels the
 * backend request too.
 */
export async function forward(request: Request, { url, headers, headersTimeoutMs }: ForwardRequest): Promise<Response> {
  // A timeout only until the response headers arrive: AbortSignal.timeout would also
  // cut a long download or a quiet event stream afterwards.
  const headersDeadline = new AbortController();
  const timer = setTimeout(() => headersDeadline.abort(), headersTimeoutMs);
  try {
    return await fetch(url, {
      method: request.method,
      headers,
      body: BODYLESS.has(request.method) ? undefined : request.body,
      duplex: "half", // stream the request body instead of buffering it
      redirect: "manual",
      decompress: false,
      signal: AbortSignal.any([request.signal, headersDeadline.signal]),
    });
  } catch (cause) {
    if (headersDeadline.signal.aborted) throw new GatewayTimeout();
    throw new BadGateway(cause);
  } finally {
    clearTimeout(timer);
  }
}
