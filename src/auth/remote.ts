import type { Config } from "../config";
import type { Logger } from "../ops/log";
import type { AuthOperations } from "./service";
import { configToWire } from "./wire";

export interface AuthWorker extends AuthOperations {
  /** SQL queries the worker has run: a cached request must not add any. */
  readonly queryCount: number;
}

export class AuthWorkerError extends Error {
  constructor(
    readonly remoteName: string,
    message: string,
    readonly code?: unknown,
  ) {
    super(message);
    this.name = "AuthWorkerError";
  }
}

/**
 * Starts the auth worker and returns its operations as async calls. Resolves once the worker
 * has opened and migrated the database; rejects with its start-up error otherwise.
 *
 * `workerUrl` defaults to this file's neighbour, which is right when running from source. A
 * compiled binary bundles this file into the entry point, so the entry point passes the
 * worker's URL relative to itself (`bun build --compile src/index.ts src/auth/worker.ts`
 * embeds the worker as ./auth/worker.ts next to it).
 */
export async function startAuthWorker(
  config: Config,
  logger: Logger,
  workerUrl = new URL("./worker.ts", import.meta.url).href,
): Promise<AuthWorker> {
  const worker = new Worker(workerUrl);
  const queries = new SharedArrayBuffer(4);
  const counter = new Int32Array(queries);
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let nextId = 0;
  let closed = false;

  const ready = new Promise<void>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent) => {
      const message = event.data;
      if (message.type === "log") return logger[message.level as "info" | "warn" | "error"](message.msg, message.fields);
      if (message.type === "ready") return resolve();
      if (message.type === "failed") return reject(new AuthWorkerError(message.error.name, message.error.message, message.error.code));
      const call = pending.get(message.id);
      if (!call) return;
      pending.delete(message.id);
      if (message.ok) call.resolve(message.value);
      else call.reject(new AuthWorkerError(message.error.name, message.error.message, message.error.code));
    };
    worker.onerror = (event) => {
      const error = new AuthWorkerError("WorkerError", event.message);
      reject(error);
      for (const call of pending.values()) call.reject(error);
      pending.clear();
      if (!closed) logger.error("auth worker failed", { error: "WorkerError" });
    };
  });
  worker.postMessage({ type: "init", config: configToWire(config), queries });
  try {
    await ready;
  } catch (error) {
    worker.terminate();
    throw error;
  }

  const call = <T>(op: keyof AuthOperations, args: unknown[], transfer: ArrayBuffer[] = []) =>
    new Promise<T>((resolve, reject) => {
      if (closed) return reject(new AuthWorkerError("Closed", "auth worker is closed"));
      const id = nextId++;
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      worker.postMessage({ id, op, args }, transfer);
    });

  return {
    handle: (method, url, headers, body) => call("handle", [method, url, headers, body], body ? [body] : []),
    getSession: (cookie, refresh) => call("getSession", [cookie, refresh]),
    signingKey: () => call("signingKey", []),
    newestKeyId: () => call("newestKeyId", []),
    openApiSchema: () => call("openApiSchema", []),
    ping: () => call("ping", []),
    pingRedis: () => call("pingRedis", []),
    get queryCount() {
      return Atomics.load(counter, 0);
    },
    async close() {
      if (closed) return;
      await call("close", []).catch(() => {});
      closed = true;
      worker.terminate();
    },
  };
}
