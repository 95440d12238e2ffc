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
 * pino writing JSON lines (level as a word) to stderr, or human-readable lines when stderr is
 * a terminal. stdout stays free for command output (`--help`, `--version`).
 *
 * Lines go through Bun's native buffered writer for stderr, flushed every 100 ms and on exit:
 * pino's default asynchronous destination (sonic-boom) cost ≈10% of the proxy thread's time
 * at one line per request, mostly measuring string byte lengths.
 */
export function createLogger(level: LogLevel = "info", { pretty: human = process.stderr.isTTY === true } = {}): Logger & {
  flush(): void;
} {
  const destination = human ? pretty({ colorize: true, sync: true, destination: 2 }) : bufferedStderr();
  const log = pino(
    { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    destination,
  );
  return {
    info: (message, fields) => log.info(fields ?? {}, message),
    warn: (message, fields) => log.warn(fields ?? {}, message),
    error: (message, fields) => log.error(fields ?? {}, message),
    flush: () => {
      if ("flush" in destination && typeof destination.flush === "function") destination.flush();
    },
  };
}

function bufferedStderr() {
  const sink = Bun.stderr.writer({ highWaterMark: 64 * 1024 });
  const timer = setInterval(() => sink.flush(), 100);
  timer.unref();
  process.once("exit", () => sink.flush());
  return {
    write: (line: string) => void sink.write(line),
    flush: () => void sink.flush(),
  };
}

/** Kept here for the proxy thread's imports; it lives in ../errors so the auth worker can use it without pino. */
export { describeError } from "../errors";
