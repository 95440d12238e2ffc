import type { Server } from "bun";

export interface ConnectionTimeouts {
  /** Lets the connection wait for the backend's headers up to the route's timeout. */
  awaitBackend(request: Request, timeoutMs: number): void;
  /** Lifts the idle timeout while an event stream streams. */
  liftWhileStreaming(request: Request): void;
  /** Puts the idle timeout back once the event stream has ended. */
  restore(request: Request, timeoutMs: number): void;
}

/**
 * Bun closes a connection after `idleSeconds` without traffic, including while a handler is
 * still waiting for the backend, and including a quiet event stream. A proxied request gets
 * enough idle time for the backend's header deadline (so the client sees the backend's answer
 * or a 504, never a reset); an event stream gets no idle limit while it streams. Bun keeps a
 * changed timeout on the keep-alive socket, so the stream's is restored when it ends (a client
 * that leaves closes the socket, so nothing is left to restore then).
 */
export function connectionTimeouts(
  server: () => Server<unknown> | undefined,
  serverRequest: (request: Request) => Request,
  idleSeconds: number,
): ConnectionTimeouts {
  const backendWaitSeconds = (timeoutMs: number) => Math.max(idleSeconds, Math.ceil(timeoutMs / 1000) + 1);
  return {
    awaitBackend(request, timeoutMs) {
      server()?.timeout(serverRequest(request), backendWaitSeconds(timeoutMs));
    },
    liftWhileStreaming(request) {
      server()?.timeout(serverRequest(request), 0);
    },
    restore(request, timeoutMs) {
      server()?.timeout(serverRequest(request), backendWaitSeconds(timeoutMs));
    },
  };
}
