/**
 * The auth worker: Better Auth, its database and its key material live here, on their own
 * thread and heap. The proxy thread asks it for what a cache miss needs (a session lookup, a
 * signing key) and hands it /api/auth/* requests. See src/auth/remote.ts for the other side.
 */
import { describeError } from "../errors";
import type { Logger } from "../ops/log";
import { configFromWire, type WireConfig } from "./wire";
import { createAuthOperations, type AuthOperations } from "./service";

declare const self: Worker;

interface Call {
  id: number;
  op: keyof AuthOperations;
  args: unknown[];
}

const logger: Logger = {
  info: (msg, fields) => self.postMessage({ type: "log", level: "info", msg, fields }),
  warn: (msg, fields) => self.postMessage({ type: "log", level: "warn", msg, fields }),
  error: (msg, fields) => self.postMessage({ type: "log", level: "error", msg, fields }),
};

let operations: AuthOperations | undefined;

// A promise nobody awaited that rejects (a background task of Better Auth or of a database
// driver) ends a Bun worker, and with it every session lookup until it is replaced: it is
// logged (its class and code only; messages can carry data) and the worker goes on.
process.on("unhandledRejection", (reason) => {
  logger.error("auth worker: unhandled rejection", describeError(reason));
});

self.onmessage = async (event: MessageEvent) => {
  const message = event.data as { type: "init"; config: WireConfig; queries: SharedArrayBuffer } | { type: "exit-for-test" } | Call;
  if ("type" in message && message.type === "exit-for-test") process.exit(70);
  if ("type" in message) {
    const counter = new Int32Array(message.queries);
    try {
      operations = await createAuthOperations(configFromWire(message.config), logger, () => Atomics.add(counter, 0, 1));
      self.postMessage({ type: "ready" });
    } catch (error) {
      self.postMessage({ type: "failed", error: summarize(error) });
    }
    return;
  }
  try {
    const operation = operations![message.op] as (...args: unknown[]) => Promise<unknown>;
    const value = await operation(...message.args);
    const body = (value as { body?: unknown } | null)?.body;
    self.postMessage({ id: message.id, ok: true, value }, body instanceof ArrayBuffer ? [body] : []);
  } catch (error) {
    self.postMessage({ id: message.id, ok: false, error: summarize(error) });
  }
};

/** Errors cross the thread boundary as name, code and message. */
function summarize(error: unknown) {
  if (!(error instanceof Error)) return { name: "Error", message: String(error) };
  return { name: error.name, message: error.message, code: (error as { code?: unknown }).code };
}
