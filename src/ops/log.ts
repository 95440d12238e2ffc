import pino from "pino";
import pretty from "pino-pretty";

/**
 * The gateway's logger: one JSON object per line. Callers choose the fields; raw errors are
 * never logged (their messages can hold the backend URL), only `describeError`'s summary.
 */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * pino writing JSON lines (level as a word) to stderr without blocking the request path
 * (sonic-boom buffers and writes asynchronously), or human-readable lines when stderr is a
 * terminal. stdout stays free for command output (`--help`, `--version`).
 */
export function createLogger(level: LogLevel = "info", { pretty: human = process.stderr.isTTY === true } = {}): Logger & {
  flush(): void;
} {
  const destination = human
    ? pretty({ colorize: true, sync: true, destination: 2 })
    : pino.destination({ dest: 2, sync: false, minLength: 4096 });
  const log = pino(
    { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    destination,
  );
  return {
    info: (message, fields) => log.info(fields ?? {}, message),
    warn: (message, fields) => log.warn(fields ?? {}, message),
    error: (message, fields) => log.error(fields ?? {}, message),
    flush: () => {
      if ("flushSync" in destination && typeof destination.flushSync === "function") destination.flushSync();
    },
  };
}

/** What may be logged about a failure: its class and code, not its message (which can hold a URL). */
export function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { error: typeof error };
  const described: Record<string, unknown> = { error: error.name };
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") described.code = code;
  if (error.cause !== undefined) described.cause = describeError(error.cause);
  return described;
}
