import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { jsonError } from "../errors";
import type { Logger } from "../ops/log";

/*
 * WebSocket relay. Elysia's `.ws()` parses message text (`'42'` would arrive as a number),
 * so the upgrade is handled at the Bun.serve level and frames are passed on as received:
 * text as strings, binary as bytes, close codes and reasons included.
 *
 * The backend socket is opened first, so the client's handshake can be answered with the
 * subprotocol the backend chose, and a backend that refuses gets the client a 502 instead of
 * a socket that opens and closes at once.
 */

/** The session (or API key) behind a socket: its id, and how to re-validate it while the socket is open. */
export interface SocketSession {
  readonly id: string;
  /** False once signed out, expired, revoked or banned. */
  isValid(): Promise<boolean>;
}

export interface RelayData {
  readonly requestId: string;
  /** Undefined for an anonymous socket (an `optional` or `none` route): nothing to re-check. */
  readonly session: SocketSession | undefined;
  readonly backend: WebSocket;
  /** Backend frames that arrived before the client side's `open`. */
  readonly early: (string | ArrayBuffer)[];
  client?: ServerWebSocket<RelayData>;
}

export interface UpgradeTarget {
  url: string;
  headers: Headers;
  protocols: string[];
  requestId: string;
  session: SocketSession | undefined;
  openTimeoutMs: number;
}

export interface RelayDeps {
  logger: Logger;
  /** How often open sockets' sessions are re-validated: the bound on closing a dead session's sockets. */
  sessionCheckIntervalMs: number;
}

/** RFC 6455 §4.1: a 16-byte nonce, base64-encoded. */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/;
/** RFC 6455 §4.1: subprotocols are HTTP tokens, separated by commas. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The client's WebSocket handshake, checked before the backend's socket is opened: what Bun
 * would refuse to upgrade (no key, another version) or the WebSocket client would refuse to
 * send (a subprotocol that is no token) is a 400 from the gateway, not a backend connection
 * opened for nothing or a 500. Returns the offered subprotocols, or the problem.
 */
export function checkHandshake(headers: Headers): { protocols: string[] } | { problem: string } {
  if (!WEBSOCKET_KEY.test(headers.get("sec-websocket-key") ?? "")) return { problem: "missing or invalid Sec-WebSocket-Key" };
  if (headers.get("sec-websocket-version") !== "13") return { problem: "Sec-WebSocket-Version is not 13" };
  const offered = headers.get("sec-websocket-protocol");
  const protocols = offered === null ? [] : offered.split(",").map((p) => p.trim());
  if (protocols.some((p) => !TOKEN.test(p))) return { problem: "invalid Sec-WebSocket-Protocol" };
  return { protocols };
}

/** Close code for "policy violation": the session behind the socket ended. */
export const SESSION_ENDED = 1008;

export function createWebSocketRelay({ logger, sessionCheckIntervalMs }: RelayDeps) {
  const open = new Set<ServerWebSocket<RelayData>>();

  async function closeEndedSessions(): Promise<void> {
    const sockets = [...open];
    const verdicts = new Map<string, Promise<boolean>>();
    await Promise.all(
      sockets.map(async (socket) => {
        const { session } = socket.data;
        if (!session) return;
        if (!verdicts.has(session.id)) verdicts.set(session.id, session.isValid().catch(() => true));
        if (!(await verdicts.get(session.id))) socket.close(SESSION_ENDED, "Session ended");
      }),
    );
  }
  const checker = setInterval(() => void closeEndedSessions(), sessionCheckIntervalMs);
  checker.unref();

  async function upgrade(request: Request, server: Server<RelayData>, target: UpgradeTarget): Promise<Response | undefined> {
    let backend: WebSocket;
    try {
      backend = new WebSocket(target.url, {
        headers: Object.fromEntries(target.headers),
        protocols: target.protocols,
      } as unknown as string[]);
    } catch (error) {
      // checkHandshake has refused what the client could send to make this throw.
      logger.error("WebSocket backend connection not opened", { requestId: target.requestId, error: (error as Error)?.name });
      return jsonError(400, "Invalid WebSocket handshake");
    }
    backend.binaryType = "arraybuffer";
    const opened = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), target.openTimeoutMs);
      backend.onopen = () => (clearTimeout(timer), resolve(true));
      backend.onerror = backend.onclose = () => (clearTimeout(timer), resolve(false));
    });
    if (!opened) {
      backend.close();
      logger.error("WebSocket backend unavailable", { requestId: target.requestId });
      return jsonError(502, "Backend unavailable");
    }

    const data: RelayData = {
      requestId: target.requestId,
      session: target.session,
      backend,
      early: [],
    };
    backend.onmessage = (event) => {
      if (data.client) data.client.send(event.data);
      else data.early.push(event.data);
    };
    backend.onclose = (event) => {
      data.client?.close(...sendableClose(event.code, event.reason));
    };
    backend.onerror = () => data.client?.close(1011, "Backend error");

    const headers = backend.protocol ? { "sec-websocket-protocol": backend.protocol } : undefined;
    if (!server.upgrade(request, { data, headers })) {
      backend.close();
      return jsonError(400, "WebSocket upgrade failed");
    }
    return undefined;
  }

  const websocket: WebSocketHandler<RelayData> = {
    open(client) {
      client.data.client = client;
      open.add(client);
      for (const frame of client.data.early.splice(0)) client.send(frame);
      // The backend may have closed between the upgrade and now.
      const { readyState } = client.data.backend;
      if (readyState === WebSocket.CLOSING || readyState === WebSocket.CLOSED) client.close(1011, "Backend closed");
    },
    message(client, message) {
      if (client.data.backend.readyState === WebSocket.OPEN) client.data.backend.send(message);
    },
    close(client, code, reason) {
      open.delete(client);
      const { backend } = client.data;
      if (backend.readyState === WebSocket.OPEN || backend.readyState === WebSocket.CONNECTING) {
        backend.close(...sendableClose(code, reason));
      }
    },
  };

  return {
    upgrade,
    websocket,
    /** Re-validates every open socket's session now (after a sign-out through this instance). */
    closeEndedSessions,
    get openCount() {
      return open.size;
    },
    /** Closes every socket (graceful shutdown) and stops the session checks. */
    closeAll(code = 1001, reason = "Gateway shutting down") {
      clearInterval(checker);
      for (const socket of open) socket.close(code, reason);
    },
  };
}

export type WebSocketRelay = ReturnType<typeof createWebSocketRelay>;

/**
 * Close codes 1005 (no code), 1006 (abnormal) and 1015 (TLS) describe a close but may not be
 * sent in a close frame; relay them as a plain close or 1011.
 */
export function sendableClose(code: number, reason: string): [number?, string?] {
  if (code === 1005) return [];
  const sendable = (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
  return sendable ? [code, reason] : [1011, "Backend connection lost"];
}
