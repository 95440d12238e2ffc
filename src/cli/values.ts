/**
 * The admin commands' flag values, parsed (pure; each rule is a row in tests/admin-cli.test.ts).
 * A value that does not parse is a usage error: exit 2, before anything is opened.
 */

/** A mistake in the command line itself: exit 2, with the command's usage as the hint. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A command that could not do what it was asked ("no user with e-mail x"): exit 1. */
export class CommandError extends Error {
  override name = "CommandError";
}

const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `30d`, `12h`, `90m` → seconds (an API key's lifetime). */
export function parseLifetime(flag: string, text: string): number {
  const match = /^([1-9][0-9]{0,6})([dhm])$/.exec(text);
  if (!match) throw new UsageError(`${flag} must be a number of days, hours or minutes such as 30d, 12h or 90m, got "${text}"`);
  return Number(match[1]) * SECONDS[match[2]!]!;
}

export interface RateLimit {
  max: number;
  windowMs: number;
}

/** `100/1m`, `10/30s`, `1000/1h`, `5000/1d` (requests per window) → Better Auth's rate-limit fields. */
export function parseRateLimit(flag: string, text: string): RateLimit {
  const match = /^([1-9][0-9]{0,8})\/([1-9][0-9]{0,6})?([smhd])$/.exec(text);
  if (!match) throw new UsageError(`${flag} must be requests per window such as 100/1m, 10/30s or 1000/1h, got "${text}"`);
  return { max: Number(match[1]), windowMs: Number(match[2] ?? "1") * SECONDS[match[3]!]! * 1000 };
}

/**
 * An ISO 8601 date (`2026-03-01`, midnight UTC) or date and time (`2026-03-01T12:00`, local
 * time, or with `Z` / `+02:00`), in the future.
 */
export function parseFutureInstant(flag: string, text: string, now = Date.now()): Date {
  const iso = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
  const date = new Date(text.replace(" ", "T"));
  if (!iso.test(text) || Number.isNaN(date.getTime())) {
    throw new UsageError(`${flag} must be an ISO date or date and time such as 2026-03-01 or 2026-03-01T12:00Z, got "${text}"`);
  }
  if (date.getTime() <= now) throw new UsageError(`${flag} must be in the future, got "${text}" (${date.toISOString()})`);
  return date;
}

/** One role, or several separated by commas (how Better Auth's admin plugin stores them). */
export function parseRole(text: string): string {
  const roles = text.split(",").map((role) => role.trim());
  // The grammar of allow.roles (src/routes/config-file.ts): a role set here can be matched there.
  if (roles.some((role) => !/^[A-Za-z0-9_.-]{1,64}$/.test(role))) {
    throw new UsageError(`a role is letters, digits and _ . - (several separated by commas), got "${text}"`);
  }
  return roles.join(",");
}

/** The whole of a password piped in, without the one newline `echo` or a file adds at the end. */
export function passwordFromStdin(text: string): string {
  return text.replace(/\r?\n$/, "");
}
