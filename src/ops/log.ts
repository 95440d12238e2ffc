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

/** Which levels a logger at each level writes. */
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/**
 * JSON lines (`{"level":"info","time":"…",…fields,"msg":"…"}`, the shape pino writes) to
 * stderr, or human-readable lines through pino-pretty when stderr is a terminal. stdout stays
 * free for command output (`--help`, `--version`, the admin commands).
 *
 * A line is one JSON.stringify of the caller's fields, spliced between the line's own keys (no
 * copy of the object per line), with the time formatted once per millisecond: pino's per-field
 * serialisation cost ≈2 µs a line at one line per request, half of it for nothing we use
 * (bench/ladder.ts, "the log line"); a spread copy and a toISOString per line were ≈1.5% of the
 * proxy thread's time under load (`bun --cpu-prof`).
 * Lines go through Bun's native buffered writer for stderr, flushed every 100 ms and on exit:
 * pino's asynchronous destination (sonic-boom) cost ≈10% of the proxy thread's time.
 */
export function createLogger(level: LogLevel = "info", { pretty: human = process.stderr.isTTY === true } = {}): Logger & {
  flush(): void;
} {
  // pino-pretty (≈20 ms to import) is loaded only where someone reads the lines on a terminal.
  const destination = human ? (require("pino-pretty") as typeof import("pino-pretty"))({ colorize: true, sync: true, destination: 2 }) : bufferedStderr();
  const threshold = RANK[level];
  // The time, formatted once per millisecond (at load, several lines share one).
  let lastMs = 0;
  let lastTime = "";
  const line = (name: "info" | "warn" | "error", message: string, fields: Record<string, unknown> | undefined) => {
    if (RANK[name] < threshold) return;
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastTime = new Date(now).toISOString();
    }
    // The fields' own JSON, spliced between time and msg: no copy of the object per line.
    let inner: string;
    try {
      const own = fields === undefined ? "{}" : JSON.stringify(fields);
      inner = own.length > 2 ? `${own.slice(1, -1)},` : "";
    } catch {
      // A field that cannot be serialised (a cycle, a BigInt): the line still says what happened.
      inner = '"logError":"fields could not be serialised",';
    }
    destination.write(`{"level":"${name}","time":"${lastTime}",${inner}"msg":${JSON.stringify(message)}}\n`);
  };
  return {
    info: (message, fields) => line("info", message, fields),
    warn: (message, fields) => line("warn", message, fields),
    error: (message, fields) => line("error", message, fields),
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
