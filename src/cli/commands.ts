/**
 * The admin commands (`authgate user|sessions|apikey|keys …`): flags parsed with node:util's
 * strict parseArgs, checked before anything is opened, then run against the gateway's own
 * database (src/cli/context.ts) and printed as short aligned lines, or as JSON with `--json`.
 *
 * stdout carries the command's output only; notes, progress and log lines go to stderr.
 * Exit codes: 0 done; 1 the command failed (no such user, a database error); 2 the command line
 * is wrong (unknown subcommand or flag, missing argument, a value that does not parse).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { APIError } from "better-auth/api";
import type { Config } from "../config";
import { createLogger, type LogLevel } from "../ops/log";
import { ADMIN_NOUNS } from "./nouns";
import { createApiKey, listApiKeys, revokeApiKey, type ApiKeyView } from "./api-keys";
import { openAdmin, type AdminContext } from "./context";
import { listSigningKeys, pruneSigningKeys, rotateSigningKey } from "./signing-keys";
import * as users from "./users";
import { CommandError, parseFutureInstant, parseLifetime, parseRateLimit, parseRole, passwordFromStdin, UsageError } from "./values";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | undefined>;

/** What a command prints: `json` with --json, `text` (lines, tables) otherwise. */
interface Output {
  json: unknown;
  text: string;
}

interface Command {
  /** After `authgate `, e.g. `user add --email E --name N [--role R] [--password-stdin]`. */
  usage: string;
  summary: string;
  options?: Options;
  /** Names of the positional arguments, all required. */
  args?: string[];
  /** Checks and converts the flags (throws UsageError) before the database is opened. */
  prepare?(values: Values, args: string[]): Promise<unknown> | unknown;
  /** `prepared` is what `prepare` returned (each command knows its own shape). */
  run(ctx: AdminContext, prepared: any, args: string[], values: Values): Promise<Output>;
}

const string = { type: "string" } as const;
const flag = { type: "boolean" } as const;

const COMMANDS: Record<string, Record<string, Command>> = {
  user: {
    add: {
      usage: "user add --email E --name N [--role R] [--password-stdin]",
      summary: "create a user; without --password-stdin, print a reset link that sets the first password (when e-mail is set up)",
      options: { email: string, name: string, role: string, "password-stdin": flag },
      async prepare(values) {
        const email = required(values, "email");
        const name = required(values, "name");
        const role = values.role === undefined ? undefined : parseRole(String(values.role));
        const password = values["password-stdin"] ? await readPassword() : undefined;
        return { email, name, role, password };
      },
      async run(ctx, input) {
        const user = await users.addUser(ctx, input);
        const lines = [`created ${user.email}  ${user.id}  role ${user.role}${user.hasPassword ? "  (with a password)" : ""}`];
        if (user.resetLink) lines.push(`reset link (sets a password; single use, until ${when(user.resetLinkExpiresAt)}):`, user.resetLink);
        return { json: user, text: lines.join("\n") };
      },
    },
    list: {
      usage: "user list",
      summary: "every user, oldest first",
      async run(ctx) {
        const all = await users.listUsers(ctx);
        const rows = all.map((user) => [user.email, user.name, user.role, user.banned ? "banned" : "", when(user.createdAt), user.id]);
        return { json: all, text: table(["EMAIL", "NAME", "ROLE", "BANNED", "CREATED", "ID"], rows, "no users") };
      },
    },
    show: {
      usage: "user show E",
      summary: "one user: role, ban, sign-in methods, active sessions, API keys",
      args: ["E"],
      async run(ctx, _input, [email]) {
        const user = await users.showUser(ctx, email!);
        const pairs: [string, string][] = [
          ["id", user.id],
          ["email", `${user.email}${user.emailVerified ? " (verified)" : " (not verified)"}`],
          ["name", user.name],
          ["role", user.role],
          ["banned", user.banned ? `yes: ${user.banReason ?? ""}${user.banExpires ? ` (until ${when(user.banExpires)})` : ""}` : "no"],
          ["sign-in", user.signInMethods.length ? user.signInMethods.join(", ") : "none yet"],
          ["sessions", String(user.activeSessions)],
          ["api keys", String(user.apiKeys)],
          ["created", when(user.createdAt)],
          ["updated", when(user.updatedAt)],
        ];
        return { json: user, text: pairs.map(([key, value]) => `${key.padEnd(9)} ${value}`).join("\n") };
      },
    },
    "set-role": {
      usage: "user set-role E R",
      summary: "set the role (several: comma-separated); it reaches the JWT's `role` claim within SESSION_CACHE_SECONDS",
      args: ["E", "R"],
      prepare: (_values, [, role]) => parseRole(role!),
      async run(ctx, role: string, [email]) {
        const user = await users.setRole(ctx, email!, role);
        return { json: user, text: `${user.email}: role ${user.role} (was ${user.previousRole})` };
      },
    },
    "set-password": {
      usage: "user set-password E --password-stdin",
      summary: "set or replace the password (read from stdin)",
      args: ["E"],
      options: { "password-stdin": flag },
      async prepare(values) {
        if (!values["password-stdin"]) throw new UsageError("--password-stdin is required: the password is read from stdin, never from the command line");
        return readPassword();
      },
      async run(ctx, password: string, [email]) {
        const user = await users.setPassword(ctx, email!, password);
        return { json: user, text: `${user.email}: password set` };
      },
    },
    ban: {
      usage: "user ban E [--reason T] [--until DATE]",
      summary: "ban (for ever, or until an ISO date/time) and end every session; the user's API keys are refused too",
      args: ["E"],
      options: { reason: string, until: string },
      prepare: (values) => ({
        reason: values.reason === undefined ? undefined : String(values.reason),
        until: values.until === undefined ? undefined : parseFutureInstant("--until", String(values.until)),
      }),
      async run(ctx, input, [email]) {
        const user = await users.banUser(ctx, email!, input);
        const until = user.banExpires ? `until ${when(user.banExpires)}` : "with no end";
        return { json: user, text: `${user.email}: banned ${until} (${user.banReason}); ${count(user.sessionsRevoked, "session")} ended` };
      },
    },
    unban: {
      usage: "user unban E",
      summary: "lift a ban",
      args: ["E"],
      async run(ctx, _input, [email]) {
        const user = await users.unbanUser(ctx, email!);
        return { json: user, text: `${user.email}: not banned` };
      },
    },
    delete: {
      usage: "user delete E",
      summary: "delete the user, their sessions, accounts and API keys",
      args: ["E"],
      async run(ctx, _input, [email]) {
        const gone = await users.deleteUser(ctx, email!);
        return {
          json: { ...gone, deleted: true },
          text: `deleted ${gone.email} (${count(gone.sessionsRevoked, "session")}, ${count(gone.apiKeysDeleted, "API key")})`,
        };
      },
    },
  },
  sessions: {
    list: {
      usage: "sessions list E",
      summary: "a user's active sessions, oldest first",
      args: ["E"],
      async run(ctx, _input, [email]) {
        const sessions = await users.listSessions(ctx, email!);
        const rows = sessions.map((session) => [session.id, when(session.createdAt), when(session.expiresAt), session.ipAddress ?? "", session.userAgent ?? ""]);
        return { json: sessions, text: table(["ID", "CREATED", "EXPIRES", "IP", "USER AGENT"], rows, `${email} has no active sessions`) };
      },
    },
    revoke: {
      usage: "sessions revoke E (--all | --session ID)",
      summary: "end every session of a user, or one (instances that cached it stop within SESSION_CACHE_SECONDS)",
      args: ["E"],
      options: { all: flag, session: string },
      prepare(values) {
        if (values.all && values.session !== undefined) throw new UsageError("either --all or --session ID, not both");
        if (values.all) return { all: true };
        if (values.session === undefined || values.session === "") throw new UsageError("say which: --all, or --session ID (see `authgate sessions list E`)");
        return { sessionId: String(values.session) };
      },
      async run(ctx, which, [email]) {
        const { revoked } = await users.revokeSessions(ctx, email!, which);
        return { json: { revoked }, text: `${count(revoked.length, "session")} ended${revoked.length ? `: ${revoked.join(", ")}` : ""}` };
      },
    },
  },
  apikey: {
    create: {
      usage: "apikey create --user E --name N [--expires 30d|12h|90m] [--rate-limit 100/1m]",
      summary: "make an API key for a user and print it (once: only its hash is kept); no rate limit unless --rate-limit",
      options: { user: string, name: string, expires: string, "rate-limit": string },
      prepare: (values) => ({
        email: required(values, "user"),
        name: required(values, "name"),
        expiresIn: values.expires === undefined ? undefined : parseLifetime("--expires", String(values.expires)),
        rateLimit: values["rate-limit"] === undefined ? undefined : parseRateLimit("--rate-limit", String(values["rate-limit"])),
      }),
      async run(ctx, input) {
        const key = await createApiKey(ctx, input);
        ctx.note(`API key ${key.id} "${key.name}" for ${key.email}, ${key.expiresAt ? `expires ${when(key.expiresAt)}` : "no expiry"}, ${limit(key)}; it is shown only this once:`);
        // The key alone on stdout, so that `KEY=$(authgate apikey create …)` works.
        return { json: key, text: key.key };
      },
    },
    list: {
      usage: "apikey list [--user E]",
      summary: "API keys (never the key itself: its first characters)",
      options: { user: string },
      prepare: (values) => (values.user === undefined ? undefined : String(values.user)),
      async run(ctx, email: string | undefined) {
        const keys = await listApiKeys(ctx, email);
        const rows = keys.map((key) => [
          key.id,
          key.name ?? "",
          key.email ?? `(deleted user ${key.userId})`,
          `${key.start ?? ""}…`,
          when(key.createdAt),
          key.expiresAt ? when(key.expiresAt) : "never",
          key.enabled ? "yes" : "no",
          limit(key),
        ]);
        return { json: keys, text: table(["ID", "NAME", "OWNER", "START", "CREATED", "EXPIRES", "ENABLED", "RATE LIMIT"], rows, "no API keys") };
      },
    },
    revoke: {
      usage: "apikey revoke ID",
      summary: "delete an API key (instances that cached it stop within SESSION_CACHE_SECONDS)",
      args: ["ID"],
      async run(ctx, _input, [id]) {
        const key = await revokeApiKey(ctx, id!);
        return { json: { ...key, revoked: true }, text: `revoked API key ${key.id} "${key.name ?? ""}" of ${key.email ?? key.userId}` };
      },
    },
  },
  keys: {
    list: {
      usage: "keys list",
      summary: "JWT signing keys, oldest first; `current` is the one instances sign with now",
      async run(ctx) {
        const keys = await listSigningKeys(ctx);
        const rows = keys.map((key) => [key.kid, when(key.createdAt), key.expiresAt ? when(key.expiresAt) : "never", key.current ? "current" : ""]);
        return {
          json: keys.map(({ kid, createdAt, expiresAt, current }) => ({ kid, createdAt, expiresAt, current })),
          text: table(["KID", "CREATED", "EXPIRES", ""], rows, "no signing keys"),
        };
      },
    },
    rotate: {
      usage: "keys rotate",
      summary: "make a new signing key now; instances sign with it after JWKS_PUBLISH_DELAY_SECONDS (they check every 60 s)",
      async run(ctx) {
        const rotation = await rotateSigningKey(ctx);
        const old = rotation.expired.length ? `; ${rotation.expired.join(", ")} stays published for tokens it signed (until \`keys prune\`, or 30 days)` : "";
        return { json: rotation, text: `new signing key ${rotation.kid}: instances sign with it by ${when(rotation.signsBy)}${old}` };
      },
    },
    prune: {
      usage: "keys prune",
      summary: "delete the signing keys no live token can still need (never the newest or the current one)",
      async run(ctx) {
        const { deleted, kept } = await pruneSigningKeys(ctx);
        const lines = [
          ...deleted.map((key) => `deleted  ${key.kid}  created ${when(key.createdAt)}`),
          ...kept.map((key) => `kept     ${key.kid}  ${key.reason}${key.neededUntil ? ` until ${when(key.neededUntil)}` : ""}`),
        ];
        return { json: { deleted, kept }, text: lines.join("\n") };
      },
    },
  },
};

/** Whether `authgate <word>` is an admin command. */
// src/cli/nouns.ts names them for src/main.ts without loading this file: they must agree.
for (const noun of Object.keys(COMMANDS)) if (!ADMIN_NOUNS.has(noun)) throw new Error(`src/cli/nouns.ts lacks "${noun}"`);

/** The admin commands' lines for --help. */
export function adminUsage(): string {
  const all = Object.values(COMMANDS).flatMap((verbs) => Object.values(verbs));
  return all.map((command) => `  authgate ${command.usage}`).join("\n");
}

function nounUsage(noun: string): string {
  const verbs = Object.values(COMMANDS[noun]!);
  const width = Math.max(...verbs.map((command) => command.usage.length));
  const lines = verbs.map((command) => `  authgate ${command.usage.padEnd(width)}  ${command.summary}`);
  return `Usage:\n${lines.join("\n")}\n\nEvery command takes --json (output as JSON on stdout). Exit codes: 0 done, 1 failed, 2 usage error.\n`;
}

export interface AdminDeps {
  /** Loads the configuration as the gateway does; prints every problem and exits 1 if any. */
  readConfig(): Config;
  /** Turns a database that cannot be opened into one line naming DATABASE_URL and exit 1. */
  openingDatabase<T>(config: Config, logger: { flush(): void }, open: () => Promise<T>): Promise<T>;
}

/** Runs `authgate <noun> <verb> …`; sets process.exitCode. */
export async function runAdminCommand(argv: string[], deps: AdminDeps): Promise<void> {
  const [noun = "", verb, ...rest] = argv;
  const verbs = COMMANDS[noun]!;
  if (verb === undefined) return usageError(`authgate ${noun}: a subcommand is needed (${Object.keys(verbs).join(", ")})`, noun);
  if (verb === "--help" || verb === "-h" || verb === "help") return void process.stdout.write(nounUsage(noun));
  const command = Object.hasOwn(verbs, verb) ? verbs[verb]! : undefined;
  if (!command) return usageError(`authgate ${noun}: unknown subcommand "${verb}" (expected ${Object.keys(verbs).join(", ")})`, noun);

  let values: Values;
  let args: string[];
  let prepared: unknown;
  try {
    ({ values, positionals: args } = parseArgs({
      args: rest,
      options: { ...command.options, json: flag, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    }));
    if (values.help) return void process.stdout.write(`Usage: authgate ${command.usage}\n  ${command.summary}\n`);
    const names = command.args ?? [];
    if (args.length < names.length) throw new UsageError(`missing ${names.slice(args.length).join(" and ")}`);
    if (args.length > names.length) throw new UsageError(`unexpected argument "${args[names.length]}"`);
    if (args.some((arg) => arg.trim() === "")) throw new UsageError("an argument is empty");
    prepared = await command.prepare?.(values, args);
  } catch (error) {
    return usageError(`authgate ${noun} ${verb}: ${usageMessage(error)}`, noun, command);
  }

  const config = deps.readConfig();
  // The CLI's own log lines (Better Auth's warnings, a lost connection) go to stderr; quieter
  // than the gateway's unless LOG_LEVEL says otherwise.
  const level: LogLevel = Bun.env.LOG_LEVEL ? config.logLevel : "warn";
  const logger = createLogger(level);
  const note = (text: string) => process.stderr.write(`authgate: ${text}\n`);
  const ctx = await deps.openingDatabase(config, logger, () => openAdmin(config, logger, note)).catch((error: unknown) => {
    logger.flush();
    note(`cannot open the database: ${describe(error)}`);
    process.exit(1);
  });
  try {
    const output = await command.run(ctx, prepared, args, values);
    const text = values.json ? JSON.stringify(output.json, null, 2) : output.text;
    if (text !== "") process.stdout.write(`${text}\n`);
    process.exitCode = 0;
  } catch (error) {
    note(describe(error));
    process.exitCode = 1;
  } finally {
    await ctx.close().catch(() => {});
    logger.flush();
  }
}

function usageError(message: string, noun: string, command?: Command): void {
  process.stderr.write(`${message}\n`);
  process.stderr.write(command ? `usage: authgate ${command.usage}\n` : `see: authgate ${noun} --help\n`);
  process.exitCode = 2;
}

/** parseArgs' messages, made short; our own UsageErrors as they are. */
function usageMessage(error: unknown): string {
  if (error instanceof UsageError) return error.message;
  const { code, message } = error as { code?: string; message?: string };
  const option = /'(-[^' ]+)/.exec(message ?? "")?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option ${option}`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return /does not take an argument/.test(message ?? "") ? `${option} takes no value` : `${option} needs a value`;
  }
  return message?.split("\n")[0] ?? String(error);
}

/** One line for the operator, never a stack trace. */
function describe(error: unknown): string {
  if (error instanceof CommandError) return error.message;
  if (error instanceof APIError) return `${error.message || error.status}${error.body?.code ? ` (${error.body.code})` : ""}`;
  if (error instanceof Error) return `${error.name}: ${error.message.split("\n")[0]}`;
  return String(error);
}

function required(values: Values, name: string): string {
  const value = values[name];
  if (typeof value !== "string" || value.trim() === "") throw new UsageError(`--${name} is required`);
  return value.trim();
}

async function readPassword(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write("password (then Ctrl-D): ");
  const password = passwordFromStdin(await Bun.stdin.text());
  if (password === "") throw new UsageError("--password-stdin: stdin held no password");
  return password;
}

/** A moment, to the second, in UTC. */
function when(date: Date | null): string {
  return date ? date.toISOString().replace(/\.\d{3}Z$/, "Z") : "-";
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function limit(key: Pick<ApiKeyView, "rateLimit">): string {
  if (!key.rateLimit) return "no rate limit";
  const seconds = key.rateLimit.windowMs / 1000;
  const window = seconds % 86_400 === 0 ? `${seconds / 86_400}d` : seconds % 3600 === 0 ? `${seconds / 3600}h` : seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;
  return `${key.rateLimit.max}/${window}`;
}

/** Columns padded to their widest cell, two spaces apart; `empty` when there are no rows. */
function table(headers: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return empty;
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}
