/** One JSON object per line on stderr; fields are chosen by callers, never raw errors with URLs. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function createLogger(write: (line: string) => void = (line) => process.stderr.write(line + "\n")): Logger {
  const emit = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    write(JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields }));
  return { info: emit("info"), warn: emit("warn"), error: emit("error") };
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
