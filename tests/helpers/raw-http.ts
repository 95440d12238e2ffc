/**
 * A raw HTTP/1.1 client on Bun.connect, for input that fetch would refuse or normalise:
 * bytes are written exactly as given and responses are parsed from the bytes received.
 * Driven by the socket's data/drain/close events; no timers.
 */

export interface RawResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
  text: string;
  /** The bytes of this response as received, latin1. */
  raw: string;
}

/**
 * Parses one complete response from the start of `bytes`: the response and how many bytes
 * it took, or undefined while it is incomplete (unless `atEof`, which throws instead).
 * `bodiless`: the response to a HEAD request, whose head announces a body it does not carry.
 */
export function parseResponse(bytes: Uint8Array, atEof: boolean, bodiless = false): { response: RawResponse; size: number } | undefined {
  const raw = Buffer.from(bytes).toString("latin1");
  const headEnd = raw.indexOf("\r\n\r\n");
  if (headEnd === -1) {
    if (!atEof) return undefined;
    throw new Error(`connection closed without a complete response: ${JSON.stringify(raw.slice(0, 2000))}`);
  }
  const [statusLine, ...lines] = raw.slice(0, headEnd).split("\r\n");
  const status = Number(statusLine!.split(" ")[1]);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const rest = bytes.subarray(headEnd + 4);
  let body: Uint8Array | undefined;
  let bodySize = 0;
  const length = headers.get("content-length");
  if (bodiless || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    body = new Uint8Array(0);
  } else if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
    const chunked = dechunk(rest);
    if (chunked) [body, bodySize] = chunked;
  } else if (length !== null) {
    if (rest.byteLength >= Number(length)) body = rest.subarray(0, (bodySize = Number(length)));
  } else if (atEof) {
    body = rest; // body delimited by the connection's end
    bodySize = rest.byteLength;
  }
  if (body === undefined) {
    if (!atEof) return undefined;
    throw new Error(`connection closed inside the body: ${JSON.stringify(raw.slice(0, 2000))}`);
  }
  const size = headEnd + 4 + bodySize;
  return {
    response: { status, headers, body, text: new TextDecoder().decode(body), raw: raw.slice(0, size) },
    size,
  };
}

/** A complete chunked body's bytes and how many bytes it took, or undefined while the last chunk has not arrived. */
function dechunk(bytes: Uint8Array): [Uint8Array, number] | undefined {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = Buffer.from(bytes.subarray(at)).indexOf("\r\n");
    if (lineEnd === -1) return undefined;
    const size = parseInt(Buffer.from(bytes.subarray(at, at + lineEnd)).toString("latin1"), 16);
    at += lineEnd + 2;
    if (size === 0) return bytes.byteLength >= at + 2 ? [Buffer.concat(parts), at + 2] : undefined;
    if (bytes.byteLength < at + size + 2) return undefined;
    parts.push(bytes.subarray(at, at + size));
    at += size + 2;
  }
}

export interface Exchange {
  /** The complete responses, in the order they arrived. */
  responses: RawResponse[];
  /** Whether the server closed the connection (before or after the responses expected). */
  closed: boolean;
  /** Bytes after the last complete response (an incomplete one, or garbage). */
  leftover: string;
}

export interface ExchangeOptions {
  /** Stop (and close the connection) once this many responses have arrived. @default 1 */
  responses?: number;
  /** Which of the responses answer HEAD requests (no body follows their head). */
  bodiless?: (index: number) => boolean;
}

/**
 * Writes `payload` as is to 127.0.0.1:`port` and collects responses until `responses` have
 * arrived or the server closes the connection. Never rejects for what the server does: a
 * connection closed early shows in `closed` and `leftover`.
 */
export function rawExchange(port: number, payload: string | Uint8Array, { responses: wanted = 1, bodiless = () => false }: ExchangeOptions = {}): Promise<Exchange> {
  const bytes = typeof payload === "string" ? Buffer.from(payload, "latin1") : Buffer.from(payload);
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const responses: RawResponse[] = [];
    let written = 0;
    let settled = false;
    const settle = (closed: boolean, socket?: { end(): void }) => {
      if (settled) return;
      settled = true;
      socket?.end();
      resolve({ responses, closed, leftover: received.toString("latin1") });
    };
    const consume = (atEof: boolean) => {
      while (responses.length < wanted && received.byteLength > 0) {
        let parsed;
        try {
          parsed = parseResponse(received, atEof, bodiless(responses.length));
        } catch {
          return; // incomplete at EOF: left in `leftover`
        }
        if (!parsed) return;
        responses.push(parsed.response);
        received = received.subarray(parsed.size);
      }
    };
    const writeMore = (socket: { write(data: Uint8Array): number }) => {
      while (written < bytes.byteLength) {
        const n = socket.write(bytes.subarray(written));
        if (n <= 0) return; // wait for drain
        written += n;
      }
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: writeMore,
        drain: writeMore,
        data(socket, chunk) {
          received = Buffer.concat([received, chunk]);
          consume(false);
          if (responses.length >= wanted) settle(false, socket);
        },
        close() {
          consume(true);
          settle(true);
        },
        error() {
          consume(true);
          settle(true);
        },
        connectError(_socket, error) {
          if (!settled) reject(error);
        },
      },
    }).catch(reject);
  });
}

/**
 * Writes `request` and resolves with the first complete response; rejects when the
 * connection closes without one.
 */
export async function rawHttp(port: number, request: string | Uint8Array, options: { bodiless?: boolean } = {}): Promise<RawResponse> {
  const { responses, leftover } = await rawExchange(port, request, { bodiless: () => options.bodiless ?? false });
  if (!responses[0]) throw new Error(`connection closed without a complete response: ${JSON.stringify(leftover.slice(0, 2000))}`);
  return responses[0];
}
