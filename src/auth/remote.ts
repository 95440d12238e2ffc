import type { Config } from "../config";
import { GatewayError } from "../errors";
import type { Logger } from "../ops/log";
import type { AuthOperations, KeyLookup, SessionLookup } from "./service";
import { configToWire } from "./wire";

/** "ok": answering; "restarting": died and being replaced; "stopped": closed by the gateway. */
export type AuthWorkerState = "ok" | "restarting" | "stopped";

export interface AuthWorker extends AuthOperations {
  /** SQL queries the worker has run: a cached request must not add any. */
  readonly queryCount: number;
  readonly state: AuthWorkerState;
  /** Times the worker died and was replaced. */
  readonly restarts: number;
  /** Tests only: the worker exits at once, as a crash would end it. */
  exitForTest(): void;
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

/** The auth worker cannot answer (it died and is being restarted, or it took too long): the client gets a 503. */
export class AuthUnavailable extends GatewayError {
  constructor(
    readonly reason: "restarting" | "stopped" | "timeout" | "failed",
    cause?: unknown,
  ) {
    super(503, "Authentication service unavailable", { cause });
  }
}

/**
 * An auth worker spawned before the gateway exists (src/index.ts does so first thing, so that
 * Better Auth's imports overlap everything else the process loads). An exit before
 * startAuthWorker takes it over is remembered: with nobody listening yet, it would be lost.
 */
export interface EarlyWorker {
  readonly worker: Worker;
  readonly exitCode: number | undefined;
}

export function spawnEarly(workerUrl: string): EarlyWorker {
  const early = { worker: new Worker(workerUrl), exitCode: undefined as number | undefined };
  early.worker.addEventListener("close", (event) => (early.exitCode = (event as CloseEvent).code));
  return early;
}

export interface SupervisionOptions {
  /** The first worker, already spawned (spawnEarly); later ones are spawned here. */
  early?: EarlyWorker;
  /** First wait before a restart; doubled after each quick failure. @default 100 */
  restartDelayMs?: number;
  /** Longest wait between restart attempts. @default 10 000 */
  maxRestartDelayMs?: number;
  /** A call the worker has not answered by then fails with 503 instead of hanging. @default 15 000 */
  callTimeoutMs?: number;
}

/** A worker that dies sooner than this after it became ready counts as a quick failure (the backoff grows). */
const STABLE_AFTER_MS = 10_000;

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: Timer;
}

/**
 * Starts the auth worker and returns its operations as async calls, supervised: a worker
 * that dies (an uncaught error, a crash) fails the calls in flight at once with
 * AuthUnavailable, answers new calls the same way while it is down, and is replaced with
 * exponential backoff, without restarting the process. The proxy thread's caches (sessions,
 * JWTs, the signing key) keep serving meanwhile.
 *
 * Resolves once the first worker has opened and migrated the database; rejects with its
 * start-up error otherwise (a bad configuration is not retried).
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
  { early, restartDelayMs = 100, maxRestartDelayMs = 10_000, callTimeoutMs = 15_000 }: SupervisionOptions = {},
): Promise<AuthWorker> {
  const queries = new SharedArrayBuffer(4);
  const counter = new Int32Array(queries);
  const pending = new Map<number, Pending>();
  let nextId = 0;
  let state: AuthWorkerState = "restarting";
  let restarts = 0;
  let worker: Worker | undefined;
  let readyAt = 0;
  let delay = restartDelayMs;
  let restartTimer: Timer | undefined;

  const failPending = (error: Error) => {
    for (const call of pending.values()) {
      clearTimeout(call.timer);
      call.reject(error);
    }
    pending.clear();
  };

  /** One worker, from `new Worker` to "ready"; rejects with its start-up error, or if it dies before. */
  function spawn(first?: EarlyWorker): Promise<Worker> {
    const candidate = first?.worker ?? new Worker(workerUrl);
    return new Promise<Worker>((resolve, reject) => {
      if (first?.exitCode !== undefined) return reject(new AuthWorkerError("WorkerExited", `the auth worker exited during start-up (code ${first.exitCode})`));
      let ready = false;
      candidate.onmessage = (event: MessageEvent) => {
        const message = event.data;
        if (message.type === "log") return logger[message.level as "info" | "warn" | "error"](message.msg, message.fields);
        if (message.type === "ready") {
          ready = true;
          return resolve(candidate);
        }
        if (message.type === "failed") {
          candidate.terminate();
          return reject(new AuthWorkerError(message.error.name, message.error.message, message.error.code));
        }
        const call = pending.get(message.id);
        if (!call) return; // answered too late: its caller got a 503 already
        pending.delete(message.id);
        clearTimeout(call.timer);
        if (message.ok) call.resolve(message.value);
        else call.reject(new AuthWorkerError(message.error.name, message.error.message, message.error.code));
      };
      candidate.onerror = (event) => {
        // An error the worker did not catch: it is about to end. Bun hands over only its
        // formatted text, which quotes source lines and can quote data: just its code is kept
        // (57P01 is PostgreSQL's "terminating connection"). "close" below does the rest.
        const code = /\bcode: "([A-Za-z0-9_]{1,40})"/.exec((event as ErrorEvent).message ?? "")?.[1];
        logger.error("auth worker error", { error: "WorkerError", ...(code && { code }) });
      };
      candidate.addEventListener("close", (event) => {
        const code = (event as CloseEvent).code;
        if (!ready) return reject(new AuthWorkerError("WorkerExited", `the auth worker exited during start-up (code ${code})`));
        if (worker === candidate) died(code);
      });
      candidate.postMessage({ type: "init", config: configToWire(config), queries });
    });
  }

  function died(code: number) {
    worker = undefined;
    if (state === "stopped") return;
    state = "restarting";
    failPending(new AuthUnavailable("restarting"));
    // A worker that died soon after starting is failing for a reason that may last: back off.
    delay = performance.now() - readyAt < STABLE_AFTER_MS ? Math.min(delay * 2, maxRestartDelayMs) : restartDelayMs;
    logger.error("auth worker died: restarting it", { exitCode: code, restartInMs: delay });
    scheduleRestart();
  }

  function scheduleRestart() {
    restartTimer = setTimeout(async () => {
      restartTimer = undefined;
      try {
        const replacement = await spawn();
        if (state === "stopped") return void replacement.terminate();
        worker = replacement;
        readyAt = performance.now();
        state = "ok";
        restarts++;
        logger.info("auth worker restarted", { restarts });
      } catch (error) {
        if (state === "stopped") return;
        // Still failing (the database may still be down): try again later.
        delay = Math.min(delay * 2, maxRestartDelayMs);
        logger.warn("auth worker restart failed: trying again", {
          error: error instanceof AuthWorkerError ? error.remoteName : "Error",
          restartInMs: delay,
        });
        scheduleRestart();
      }
    }, delay);
  }

  worker = await spawn(early);
  readyAt = performance.now();
  state = "ok";

  const call = <T>(op: keyof AuthOperations, args: unknown[], transfer: ArrayBuffer[] = []) =>
    new Promise<T>((resolve, reject) => {
      if (state !== "ok" || !worker) return reject(new AuthUnavailable(state === "stopped" ? "stopped" : "restarting"));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        logger.error("auth worker did not answer in time", { op, timeoutMs: callTimeoutMs });
        reject(new AuthUnavailable("timeout"));
      }, callTimeoutMs);
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      worker.postMessage({ id, op, args }, transfer);
    });

  return {
    handle: (method, url, headers, body) => call("handle", [method, url, headers, body], body ? [body] : []),
    // A session that cannot be looked up (the database is down) is the auth service being
    // unavailable, a 503 the client may retry, not an error of the gateway.
    getSession: (credential, refresh) =>
      call<SessionLookup | null>("getSession", [credential, refresh]).catch((error: unknown) => {
        throw error instanceof AuthUnavailable ? error : new AuthUnavailable("failed", error);
      }),
    verifyApiKey: (key) =>
      call<KeyLookup>("verifyApiKey", [key]).catch((error: unknown) => {
        throw error instanceof AuthUnavailable ? error : new AuthUnavailable("failed", error);
      }),
    apiKeyStatus: (key) =>
      call<KeyLookup>("apiKeyStatus", [key]).catch((error: unknown) => {
        throw error instanceof AuthUnavailable ? error : new AuthUnavailable("failed", error);
      }),
    signingKey: () => call("signingKey", []),
    newestKeyId: () => call("newestKeyId", []),
    openApiSchema: () => call("openApiSchema", []),
    ping: () => call("ping", []),
    pingRedis: () => call("pingRedis", []),
    get queryCount() {
      return Atomics.load(counter, 0);
    },
    get state() {
      return state;
    },
    get restarts() {
      return restarts;
    },
    exitForTest() {
      worker?.postMessage({ type: "exit-for-test" });
    },
    async close() {
      if (state === "stopped") return;
      const closing = state === "ok" ? call("close", []).catch(() => {}) : Promise.resolve();
      clearTimeout(restartTimer);
      await closing;
      state = "stopped";
      failPending(new AuthUnavailable("stopped"));
      worker?.terminate();
      worker = undefined;
    },
  };
}
