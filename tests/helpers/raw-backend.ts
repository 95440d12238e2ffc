import { createHash } from "node:crypto";
import type { Socket } from "bun";

/**
 * A recording HTTP/1.1 backend on Bun.listen, for tests that must see the exact bytes the
 * gateway sent. Bun.serve would normalise them (or refuse them before the test could look),
 * which is the opposite of what a test of the gateway's output needs.
 *
 * Each request's head is parsed from the byte stream as received and its body read by its
 * framing (Content-Length or chunked). Whatever a strict HTTP/1.1 recipient would refuse is
 * written down as a violation on the request's record instead of crashing: the test decides
 * what to do with it. Every request that can be framed is answered `200 OK` with a small JSON
 * body and a Content-Length, and the connection is kept alive (Bun's fetch pools connections),
 * so several requests per connection are parsed in turn. A request that cannot be framed is
 * answered 400 and its connection closed, as a real server would.
 *
 * A WebSocket handshake (`Upgrade: websocket`) is answered 101 (with the first subprotocol
 * offered, if any), so that the gateway's relay opens; whatever follows on that connection is
 * not parsed, the connection is just ended.
 */

export interface RawRequest {
  /** Which connection (0, 1, …) and which request on it (0, 1, …). */
  connection: number;
  index: number;
  /** The head as received, latin1, from the request line through the empty line that ends it. */
  head: string;
  method: string;
  target: string;
  version: string;
  /** Header lines split at the first colon: the name as sent, the value without surrounding SP/HTAB. */
  headers: [name: string, value: string][];
  framing: "none" | "content-length" | "chunked";
  /** Body bytes read so far (the whole body once `complete`). */
  bodyBytes: number;
  /** The body was read to its end (and the request answered). */
  complete: boolean;
  /** What a strict HTTP/1.1 recipient would refuse in this request, in words. */
  violations: string[];
}

export interface RawBackend {
  url: string;
  port: number;
  /** Every request whose head arrived, in arrival order. */
  requests: RawRequest[];
  /** Bytes that could not be read as a request at all (e.g. after a body framed wrongly). */
  garbage: { connection: number; bytes: string; violation: string }[];
  stop(): Promise<void>;
}

/** All values of a header (case-insensitive name) in a recorded request. */
export function headerValues(request: RawRequest, name: string): string[] {
  const wanted = name.toLowerCase();
  return request.headers.filter(([n]) => n.toLowerCase() === wanted).map(([, v]) => v);
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Heads larger than this are refused (431), like any server would; the gateway's are far smaller. */
const MAX_HEAD_BYTES = 256 * 1024;

type BodyState =
  | { kind: "none" }
  | { kind: "length"; remaining: number }
  /** Chunked: reading a size line, chunk data (`remaining` + its CRLF), or the trailer section. */
  | { kind: "chunk-size" }
  | { kind: "chunk-data"; remaining: number }
  | { kind: "chunk-crlf" }
  | { kind: "trailers" };

interface Connection {
  id: number;
  buffer: Buffer;
  requests: number;
  /** The request whose body is being read, if any. */
  current?: RawRequest;
  body: BodyState;
  /** Once a WebSocket is open, or a request could not be framed: nothing more is parsed. */
  done: boolean;
  /** Close after the current answer (Connection: close, or HTTP/1.0 without keep-alive). */
  closeAfter: boolean;
}

export function startRawBackend(): RawBackend {
  const requests: RawRequest[] = [];
  const garbage: RawBackend["garbage"] = [];
  let connections = 0;
  const open = new Set<Socket<Connection>>();

  const answer = (socket: Socket<Connection>, request: RawRequest) => {
    const body = JSON.stringify({ ok: true, method: request.method, target: request.target, bodyBytes: request.bodyBytes });
    socket.write(
      `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `${socket.data.closeAfter ? "Connection: close\r\n" : ""}\r\n${request.method === "HEAD" ? "" : body}`,
    );
    if (socket.data.closeAfter) {
      socket.data.done = true;
      socket.end();
    }
  };

  /** Refuses what cannot be framed: a 400, and the connection is closed (nothing after it can be trusted). */
  const refuse = (socket: Socket<Connection>, status = "400 Bad Request") => {
    socket.data.done = true;
    socket.write(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    socket.end();
  };

  /** Parses one head (ending in its empty line) into a record, noting what is malformed. */
  const parseHead = (connection: Connection, head: string): RawRequest => {
    const violations: string[] = [];
    const lines = head.slice(0, -4).split("\r\n");
    const requestLine = lines.shift()!;
    const parts = requestLine.split(" ");
    if (parts.length !== 3 || parts.some((part) => part === "")) violations.push(`malformed request line ${JSON.stringify(requestLine)}`);
    const [method = "", target = "", version = ""] = parts;
    if (!TOKEN.test(method)) violations.push(`method is not a token: ${JSON.stringify(method)}`);
    if (version !== "HTTP/1.1" && version !== "HTTP/1.0") violations.push(`version ${JSON.stringify(version)}`);
    checkControls("request line", requestLine, violations);

    const headers: [string, string][] = [];
    for (const line of lines) {
      if (line.startsWith(" ") || line.startsWith("\t")) violations.push(`obs-fold continuation line ${JSON.stringify(line)}`);
      const colon = line.indexOf(":");
      if (colon === -1) {
        violations.push(`header line without a colon: ${JSON.stringify(line)}`);
        continue;
      }
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
      if (!TOKEN.test(name)) violations.push(`header name is not a token: ${JSON.stringify(name)}`);
      checkControls(`header ${JSON.stringify(name)}`, line, violations);
      headers.push([name, value]);
    }
    connection.requests++;
    return {
      connection: connection.id,
      index: connection.requests - 1,
      head,
      method,
      target,
      version,
      headers,
      framing: "none",
      bodyBytes: 0,
      complete: false,
      violations,
    };
  };

  /** Decides the body's framing from the head (RFC 9112 §6.3); false when it cannot be framed. */
  const frame = (connection: Connection, request: RawRequest): boolean => {
    const lengths = headerValues(request, "content-length");
    const codings = headerValues(request, "transfer-encoding");
    if (lengths.length > 0 && codings.length > 0) request.violations.push("both Content-Length and Transfer-Encoding");
    if (lengths.length > 1) request.violations.push(`${lengths.length} Content-Length fields: ${JSON.stringify(lengths)}`);
    if (codings.length > 0) {
      const list = codings.join(",").split(",").map((c) => c.trim().toLowerCase());
      if (list.at(-1) !== "chunked" || list.filter((c) => c === "chunked").length !== 1) {
        request.violations.push(`Transfer-Encoding ${JSON.stringify(codings)} does not end in one chunked`);
        return false;
      }
      request.framing = "chunked";
      connection.body = { kind: "chunk-size" };
      return true;
    }
    if (lengths.length > 0) {
      const distinct = new Set(lengths.flatMap((l) => l.split(",").map((v) => v.trim())));
      const [only] = distinct;
      if (distinct.size !== 1 || !/^\d{1,15}$/.test(only!)) {
        request.violations.push(`unusable Content-Length ${JSON.stringify(lengths)}`);
        return false;
      }
      if (lengths.some((l) => l.includes(","))) request.violations.push(`Content-Length list ${JSON.stringify(lengths)}`);
      request.framing = "content-length";
      connection.body = Number(only) > 0 ? { kind: "length", remaining: Number(only) } : { kind: "none" };
      return true;
    }
    connection.body = { kind: "none" };
    return true;
  };

  /** Consumes as much of the connection's buffer as it can: heads, bodies, answers. */
  const pump = (socket: Socket<Connection>) => {
    const connection = socket.data;
    while (!connection.done) {
      const request = connection.current;
      const body = connection.body;
      if (!request) {
        // Between requests: a head, up to its empty line. RFC 9112 §2.2 lets a server skip empty lines before it.
        while (connection.buffer.subarray(0, 2).toString("latin1") === "\r\n") connection.buffer = connection.buffer.subarray(2);
        const end = connection.buffer.indexOf("\r\n\r\n");
        if (end === -1) {
          if (connection.buffer.byteLength > MAX_HEAD_BYTES) {
            garbage.push({ connection: connection.id, bytes: connection.buffer.toString("latin1", 0, 2000), violation: "head too large" });
            refuse(socket, "431 Request Header Fields Too Large");
          }
          return;
        }
        const head = connection.buffer.toString("latin1", 0, end + 4);
        connection.buffer = connection.buffer.subarray(end + 4);
        const parsed = parseHead(connection, head);
        requests.push(parsed);
        if (parsed.violations.some((v) => v.startsWith("malformed request line"))) {
          // Not a request: the bytes before it were probably framed wrongly (request smuggling's symptom).
          garbage.push({ connection: connection.id, bytes: head.slice(0, 2000), violation: parsed.violations.join("; ") });
          refuse(socket);
          return;
        }
        const connectionTokens = headerValues(parsed, "connection").join(",").toLowerCase().split(",").map((t) => t.trim());
        connection.closeAfter = connectionTokens.includes("close") || (parsed.version === "HTTP/1.0" && !connectionTokens.includes("keep-alive"));
        if (headerValues(parsed, "upgrade").some((u) => u.toLowerCase() === "websocket")) {
          const key = headerValues(parsed, "sec-websocket-key")[0] ?? "";
          const accept = createHash("sha1").update(key + WEBSOCKET_GUID).digest("base64");
          // Like most servers, pick the client's first subprotocol: a client that asked for some
          // fails a handshake that selects none (as browsers do).
          const protocol = headerValues(parsed, "sec-websocket-protocol").join(",").split(",")[0]?.trim();
          parsed.complete = true;
          connection.done = true; // frames are not parsed; the first one ends the connection (see data)
          socket.write(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n` +
              `${protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : ""}\r\n`,
          );
          return;
        }
        if (!frame(connection, parsed)) {
          refuse(socket);
          return;
        }
        connection.current = parsed;
        const expect = headerValues(parsed, "expect").join(",").toLowerCase();
        if (expect.includes("100-continue") && connection.body.kind !== "none") socket.write("HTTP/1.1 100 Continue\r\n\r\n");
        continue;
      }
      switch (body.kind) {
        case "none":
          request.complete = true;
          connection.current = undefined;
          answer(socket, request);
          continue;
        case "length":
        case "chunk-data": {
          const take = Math.min(body.remaining, connection.buffer.byteLength);
          if (take === 0) return;
          request.bodyBytes += take;
          body.remaining -= take;
          connection.buffer = connection.buffer.subarray(take);
          if (body.remaining === 0) connection.body = body.kind === "length" ? { kind: "none" } : { kind: "chunk-crlf" };
          continue;
        }
        case "chunk-crlf": {
          if (connection.buffer.byteLength < 2) return;
          if (connection.buffer.toString("latin1", 0, 2) !== "\r\n") {
            request.violations.push(`chunk data not followed by CRLF: ${JSON.stringify(connection.buffer.toString("latin1", 0, 40))}`);
            refuse(socket);
            return;
          }
          connection.buffer = connection.buffer.subarray(2);
          connection.body = { kind: "chunk-size" };
          continue;
        }
        case "chunk-size": {
          const line = takeLine(connection);
          if (line === undefined) return;
          const match = /^([0-9A-Fa-f]{1,15})[ \t]*(;.*)?$/.exec(line);
          if (!match || /[\r\n\0]/.test(line)) {
            request.violations.push(`bad chunk size line ${JSON.stringify(line)}`);
            refuse(socket);
            return;
          }
          const size = parseInt(match[1]!, 16);
          connection.body = size === 0 ? { kind: "trailers" } : { kind: "chunk-data", remaining: size };
          continue;
        }
        case "trailers": {
          const line = takeLine(connection);
          if (line === undefined) return;
          if (line === "") connection.body = { kind: "none" };
          else checkControls("trailer", line, request.violations);
          continue;
        }
      }
    }
  };

  const listener = Bun.listen<Connection>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { id: connections++, buffer: Buffer.alloc(0), requests: 0, body: { kind: "none" }, done: false, closeAfter: false };
        open.add(socket);
      },
      data(socket, chunk) {
        if (socket.data.done) {
          // A WebSocket's first frame (or bytes after a refusal): this backend has nothing more to say.
          socket.end();
          return;
        }
        socket.data.buffer = Buffer.concat([socket.data.buffer, chunk]);
        try {
          pump(socket);
        } catch (error) {
          // A bug here must show up as a failed check, not as a crash of the test process.
          socket.data.current?.violations.push(`raw backend failed to parse: ${(error as Error).message}`);
          garbage.push({ connection: socket.data.id, bytes: "", violation: `raw backend failed to parse: ${(error as Error).stack}` });
          refuse(socket);
        }
      },
      close(socket) {
        open.delete(socket);
      },
      error(socket) {
        open.delete(socket);
      },
    },
  });

  return {
    url: `http://127.0.0.1:${listener.port}`,
    port: listener.port,
    requests,
    garbage,
    async stop() {
      listener.stop(true);
      for (const socket of open) socket.terminate();
      open.clear();
    },
  };
}

/** The next CRLF-terminated line of the connection's buffer (consumed), or undefined until it has arrived. */
function takeLine(connection: Connection): string | undefined {
  const end = connection.buffer.indexOf("\r\n");
  if (end === -1) return undefined;
  const line = connection.buffer.toString("latin1", 0, end);
  connection.buffer = connection.buffer.subarray(end + 2);
  return line;
}

/** CR, LF and NUL must never appear inside a line; they are what header injection is made of. */
function checkControls(what: string, line: string, violations: string[]): void {
  if (line.includes("\r")) violations.push(`CR in ${what}: ${JSON.stringify(line.slice(0, 200))}`);
  if (line.includes("\n")) violations.push(`LF in ${what}: ${JSON.stringify(line.slice(0, 200))}`);
  if (line.includes("\0")) violations.push(`NUL in ${what}: ${JSON.stringify(line.slice(0, 200))}`);
}
