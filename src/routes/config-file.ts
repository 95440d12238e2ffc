import { readFileSync, statSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import { AUTH_MODES, RESERVED_PATHS, RESERVED_PREFIXES, type AllowRule, type AuthMode, type Route } from "./table";

/**
 * The route table from a config file (CONFIG_FILE), or, without one, the table today's
 * environment implies. Strict on purpose: an unknown key, a string where a number belongs or
 * an allow rule that admits everyone is an error, never a guess, because a typo must not
 * silently weaken a rule. Every problem is collected (one line each, naming the field as
 * `routes[2].upstream`) so an operator fixes them in one go, as for the environment.
 */

type Env = Record<string, string | undefined>;

/** What a route gets for a setting it leaves out: the environment's values. */
export interface RouteDefaults {
  /** PROXY_TIMEOUT_MS. */
  proxyTimeoutMs: number;
  /** MAX_BODY_BYTES. */
  maxBodyBytes: number;
  /** BETTER_AUTH_URL's origin. */
  audience: string;
  /** PAGES_PATH, reserved like the gateway's other paths; undefined: PAGES=off. */
  pagesPath?: string | undefined;
}

/** BACKEND_API_URL when unset, as before route tables existed. */
const DEFAULT_BACKEND_URL = "http://localhost:8080";

const TOP_KEYS: readonly string[] = ["routes"];
const COMMON_KEYS: readonly string[] = ["name", "path", "auth", "allow"];
const UPSTREAM_KEYS: readonly string[] = ["upstream", "timeout_ms", "max_body_bytes", "strip_prefix", "audience", "identity_headers"];
const STATIC_KEYS: readonly string[] = ["static", "spa"];
const ROUTE_KEYS: readonly string[] = [...COMMON_KEYS, ...UPSTREAM_KEYS, ...STATIC_KEYS];
const ALLOW_KEYS: readonly string[] = ["emails", "email_domains", "email_verified", "roles", "api_keys"];
/** A role as Better Auth's admin plugin stores it (a comma separates several). */
const ROLE = /^[A-Za-z0-9_.-]{1,64}$/;

/** The name goes into metric labels and log fields: short, and nothing that needs quoting. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** One "@", something on both sides, no spaces: enough to catch a list of domains given as emails. */
const EMAIL = /^[^\s@]+@[^\s@]+$/;
/** Dot-separated, non-empty labels; any letters (internationalised names), nothing URL-like. */
const DOMAIN = /^[^\s@/:\\?#.]+(?:\.[^\s@/:\\?#.]+)*$/u;

const FORMATS: Record<string, { label: string; parse: (text: string) => unknown }> = {
  ".toml": { label: "TOML", parse: (text) => Bun.TOML.parse(text) },
  ".yaml": { label: "YAML", parse: (text) => Bun.YAML.parse(text) },
  ".yml": { label: "YAML", parse: (text) => Bun.YAML.parse(text) },
  ".json": { label: "JSON", parse: (text) => JSON.parse(text) },
};

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** A value as a message quotes it: strings quoted (and cut short), containers by their kind. */
function show(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (Array.isArray(value)) return value.length === 0 ? "an empty array" : "an array";
  if (value instanceof Date) return "a date";
  if (isTable(value)) return "a table";
  return String(value);
}

/** Own keys only: a document's "constructor" or "__proto__" is data, never the prototype's. */
function get(table: Table, key: string): unknown {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

function unknownKeys(table: Table, known: readonly string[], where: string, problems: string[]): void {
  for (const key of Object.keys(table)) {
    if (!known.includes(key)) problems.push(`${where}: unknown key ${JSON.stringify(key)}`);
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

// Field readers: each returns the value, or undefined after pushing one problem for the field.

function wholeNumber(value: unknown, field: string, min: number, max: number, problems: string[]): number | undefined {
  if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return value;
  problems.push(`${field}: must be a whole number from ${min} to ${max}, got ${show(value)}`);
  return undefined;
}

function boolean(value: unknown, field: string, problems: string[]): boolean | undefined {
  if (typeof value === "boolean") return value;
  problems.push(`${field}: must be true or false, got ${show(value)}`);
  return undefined;
}

function string(value: unknown, field: string, problems: string[]): string | undefined {
  if (typeof value === "string") return value;
  problems.push(value === undefined ? `${field}: required` : `${field}: must be a string, got ${show(value)}`);
  return undefined;
}

const RESERVED_NAMES = ["auth", "other"];

function parseName(value: unknown, field: string, problems: string[]): string | undefined {
  const name = string(value, field, problems);
  if (name !== undefined && NAME.test(name) && RESERVED_NAMES.includes(name)) {
    // The request metrics' `route` label uses these for the gateway's own requests.
    problems.push(`${field}: "${name}" is the metrics' name for the gateway's own requests: choose another`);
    return undefined;
  }
  if (name === undefined || NAME.test(name)) return name;
  problems.push(`${field}: must be 1 to 64 letters, digits, "_", "." or "-", starting with a letter or digit, got ${show(name)}`);
  return undefined;
}

/** Why a path cannot be matched unambiguously against a request's raw path, or undefined. */
function pathFault(path: string): string | undefined {
  if (!path.startsWith("/")) return 'must start with "/"';
  if (/[\s\x00-\x1f\x7f]/.test(path)) return "must not contain whitespace or control characters";
  // Requests carry anything else percent-encoded, so such a path would never match.
  if (/[^\x21-\x7e]/.test(path)) return "must contain only ASCII characters";
  // A request's path is matched as sent: a query or fragment never reaches it, and an encoded
  // or backslashed form would match what a backend might decode differently.
  for (const character of ["?", "#", "%"]) if (path.includes(character)) return `must not contain "${character}"`;
  if (path.includes("\\")) return "must not contain a backslash";
  if (path.includes("//")) return 'must not contain "//"';
  if (path.split("/").some((segment) => segment === "." || segment === "..")) return 'must not contain "." or ".." segments';
  // Backends that drop ;parameters or trailing dots would read such a path as another one
  // (src/routes/match.ts compares requests the way they read them).
  if (path.includes(";")) return 'must not contain ";"';
  if (path.split("/").some((segment) => segment.endsWith("."))) return 'must not have a segment ending in "."';
  return undefined;
}

/** The reserved gateway path a route path would shadow, described, or undefined. */
function reservedBy(path: string, pagesPath: string | undefined): string | undefined {
  for (const reserved of pagesPath ? [...RESERVED_PATHS, pagesPath] : RESERVED_PATHS) {
    if (path === reserved) return "";
    if (path.startsWith(`${reserved}/`)) return ` (under "${reserved}")`;
  }
  // `/swagger*` as a raw string: `/swagger-ui` and `/swaggerx` too.
  for (const prefix of RESERVED_PREFIXES) {
    if (path === prefix) return "";
    if (path.startsWith(prefix)) return ` (starts with "${prefix}")`;
  }
  return undefined;
}

/** The path without its trailing slash ("/" stays), or undefined after a problem. */
function parsePath(value: unknown, field: string, pagesPath: string | undefined, problems: string[]): string | undefined {
  const raw = string(value, field, problems);
  if (raw === undefined) return undefined;
  const fault = pathFault(raw);
  if (fault) {
    problems.push(`${field}: ${fault}, got ${show(raw)}`);
    return undefined;
  }
  const path = raw.length > 1 && raw.endsWith("/") ? raw.slice(0, -1) : raw;
  const reserved = reservedBy(path, pagesPath);
  if (reserved !== undefined) {
    const hint = pagesPath && (path === pagesPath || path.startsWith(`${pagesPath}/`)) ? " (the sign-in pages: set PAGES_PATH, or PAGES=off)" : "";
    problems.push(`${field}: ${show(path)} is reserved for the gateway${reserved}${hint}`);
    return undefined;
  }
  return path;
}

function parseAuth(value: unknown, field: string, problems: string[]): AuthMode | undefined {
  if (value === undefined) return "required";
  if (AUTH_MODES.includes(value as AuthMode)) return value as AuthMode;
  problems.push(`${field}: must be "required", "optional" or "none", got ${show(value)}`);
  return undefined;
}

/**
 * An upstream URL. The value is never quoted back: it may carry credentials, and a string
 * that is not a URL may be one with its scheme missing ("user:secret@host").
 */
function parseUpstream(value: unknown, field: string, problems: string[]): URL | undefined {
  const raw = string(value, field, problems);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    problems.push(`${field}: not an http(s) URL`);
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    problems.push(`${field}: not an http(s) URL`);
    return undefined;
  }
  if (url.username || url.password) {
    problems.push(`${field}: must not carry credentials (user:password@); the URL is not shown`);
    return undefined;
  }
  // The href, not url.search: a bare "?" or "#" leaves those empty but would still end the prefix.
  if (/[?#]/.test(url.href)) {
    problems.push(`${field}: must not carry a query or fragment`);
    return undefined;
  }
  return url;
}

function parseStaticDir(value: unknown, field: string, baseDir: string, problems: string[]): string | undefined {
  const raw = string(value, field, problems);
  if (raw === undefined) return undefined;
  // "" would resolve to the config file's own directory: never what was meant.
  if (raw.trim() === "") {
    problems.push(`${field}: must be a directory path, got ${show(raw)}`);
    return undefined;
  }
  const root = resolve(baseDir, raw);
  if (!isDirectory(root)) {
    problems.push(`${field}: ${root} is not a directory`);
    return undefined;
  }
  return root;
}

/** A list of strings, each checked and normalised by `entry` (undefined: rejected, reported). */
function stringList(
  value: unknown,
  field: string,
  what: string,
  entry: (item: string, field: string) => string | undefined,
  problems: string[],
): string[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    problems.push(`${field}: must be an array of ${what}, got ${show(value)}`);
    return undefined;
  }
  const items: string[] = [];
  let ok = true;
  value.forEach((item: unknown, index) => {
    const normalised = typeof item === "string" ? entry(item, `${field}[${index}]`) : undefined;
    if (typeof item !== "string") problems.push(`${field}[${index}]: must be a string, got ${show(item)}`);
    if (normalised === undefined) ok = false;
    else if (!items.includes(normalised)) items.push(normalised);
  });
  return ok ? items : undefined;
}

function parseAllow(value: unknown, field: string, problems: string[]): AllowRule | undefined {
  if (!isTable(value)) {
    problems.push(`${field}: must be a table, got ${show(value)}`);
    return undefined;
  }
  const before = problems.length;
  unknownKeys(value, ALLOW_KEYS, field, problems);
  const emails = stringList(get(value, "emails"), `${field}.emails`, "e-mail addresses", (item, at) => {
    if (EMAIL.test(item)) return item.toLowerCase();
    problems.push(`${at}: must be an e-mail address like ada@example.com, got ${show(item)}`);
    return undefined;
  }, problems);
  const emailDomains = stringList(get(value, "email_domains"), `${field}.email_domains`, "domains", (item, at) => {
    if (item.startsWith("@") && DOMAIN.test(item.slice(1))) {
      problems.push(`${at}: must be a bare domain: write ${show(item.slice(1).toLowerCase())}, not ${show(item)}`);
    } else if (DOMAIN.test(item)) {
      return item.toLowerCase();
    } else {
      problems.push(`${at}: must be a bare domain like example.com, got ${show(item)}`);
    }
    return undefined;
  }, problems);
  const roles = stringList(get(value, "roles"), `${field}.roles`, "roles", (item, at) => {
    if (ROLE.test(item)) return item;
    problems.push(`${at}: must be a role name like "admin" (letters, digits, _ . -), got ${show(item)}`);
    return undefined;
  }, problems);
  const apiKeysRaw = get(value, "api_keys");
  const apiKeys = apiKeysRaw === undefined ? true : boolean(apiKeysRaw, `${field}.api_keys`, problems);
  const verifiedRaw = get(value, "email_verified");
  // An address proves nothing until it is verified: anyone can sign up as ada@example.com. So
  // a rule that names addresses or domains requires a verified e-mail unless it says
  // `email_verified = false` (for tables whose users are all created by an operator).
  const emailVerified =
    verifiedRaw === undefined
      ? (emails?.length ?? 0) > 0 || (emailDomains?.length ?? 0) > 0
      : boolean(verifiedRaw, `${field}.email_verified`, problems);
  if (problems.length > before || !emails || !emailDomains || !roles || emailVerified === undefined || apiKeys === undefined) return undefined;
  // Every list empty admits every signed-in user: as a rule that is surely a mistake.
  if (emails.length === 0 && emailDomains.length === 0 && roles.length === 0 && !emailVerified && apiKeys) {
    problems.push(`${field}: is empty: give emails, email_domains, roles, email_verified = true or api_keys = false, or remove it`);
    return undefined;
  }
  return Object.freeze({ emails: Object.freeze(emails), emailDomains: Object.freeze(emailDomains), roles: Object.freeze(roles), emailVerified, apiKeys });
}

/** Names and paths taken so far, with the index that took them. */
interface Seen {
  names: Map<string, { index: number; value: string }>;
  /** By lower-cased path. */
  paths: Map<string, { index: number; value: string }>;
}

/**
 * A second route with the same name or path: which one would win is not for the table to
 * guess. Paths are compared ignoring case, as case-insensitive backends would read them
 * (src/routes/match.ts refuses requests that such a reading puts under another route).
 */
function unique(
  value: string | undefined,
  taken: Map<string, { index: number; value: string }>,
  index: number,
  field: string,
  what: "name" | "path",
  problems: string[],
): void {
  if (value === undefined) return;
  const key = what === "path" ? value.toLowerCase() : value;
  const first = taken.get(key);
  if (first === undefined) taken.set(key, { index, value });
  else problems.push(`${field}: ${show(value)} is also routes[${first.index}]'s ${what}${first.value !== value ? ` (${show(first.value)}, ignoring case)` : ""}`);
}

function parseRoute(value: unknown, index: number, defaults: RouteDefaults, baseDir: string, seen: Seen, problems: string[]): Route | undefined {
  const where = `routes[${index}]`;
  if (!isTable(value)) {
    problems.push(`${where}: must be a table, got ${show(value)}`);
    return undefined;
  }
  const before = problems.length;
  const field = (key: string) => `${where}.${key}`;
  const has = (key: string) => get(value, key) !== undefined;
  unknownKeys(value, ROUTE_KEYS, where, problems);

  const name = parseName(get(value, "name"), field("name"), problems);
  unique(name, seen.names, index, field("name"), "name", problems);
  const path = parsePath(get(value, "path"), field("path"), defaults.pagesPath, problems);
  unique(path, seen.paths, index, field("path"), "path", problems);

  let kind: Route["kind"] | undefined;
  if (has("upstream") && has("static")) problems.push(`${where}: upstream and static exclude each other`);
  else if (has("upstream")) kind = "upstream";
  else if (has("static")) kind = "static";
  else problems.push(`${where}: give either upstream or static`);
  // A setting of the other kind would be ignored: refused, so nobody believes it applies.
  if (kind) {
    const other = kind === "upstream" ? STATIC_KEYS : UPSTREAM_KEYS;
    for (const key of other) if (has(key)) problems.push(`${field(key)}: only for ${kind === "upstream" ? "static" : "upstream"} routes`);
  }

  const auth = parseAuth(get(value, "auth"), field("auth"), problems);
  let allow: AllowRule | undefined;
  if (has("allow")) {
    if (auth !== undefined && auth !== "required") {
      problems.push(`${field("allow")}: only for auth = "required" routes: with auth = "${auth}" there may be no signed-in user to check`);
    } else {
      allow = parseAllow(get(value, "allow"), field("allow"), problems);
    }
  }

  // On an auth = "none" route nobody is identified: these would be ignored, so they are refused.
  if (auth === "none") {
    for (const key of ["audience", "identity_headers"]) {
      if (has(key)) problems.push(`${field(key)}: only for routes that identify the caller (auth = "required" or "optional")`);
    }
  }

  // With the kind unknown, both kinds' settings are checked: every problem in one go.
  const optional = <T>(key: string, parse: (value: unknown, field: string) => T | undefined, fallback: T): T | undefined =>
    has(key) ? parse(get(value, key), field(key)) : fallback;
  let route: Route | undefined;
  if (kind !== "static") {
    const upstream = has("upstream") ? parseUpstream(get(value, "upstream"), field("upstream"), problems) : undefined;
    const timeoutMs = optional("timeout_ms", (v, f) => wholeNumber(v, f, 1, 3_600_000, problems), defaults.proxyTimeoutMs);
    const maxBodyBytes = optional("max_body_bytes", (v, f) => wholeNumber(v, f, 0, Number.MAX_SAFE_INTEGER, problems), defaults.maxBodyBytes);
    const stripPrefix = optional("strip_prefix", (v, f) => boolean(v, f, problems), false);
    const identityHeaders = optional("identity_headers", (v, f) => boolean(v, f, problems), false);
    const audience = optional("audience", (v, f) => {
      if (typeof v === "string" && v.trim() !== "") return v;
      problems.push(`${f}: must be a non-empty string, got ${show(v)}`);
      return undefined;
    }, defaults.audience);
    if (kind === "upstream" && problems.length === before) {
      // No problem was added, so every field above is defined.
      route = {
        index,
        name: name!,
        path: path!,
        auth: auth!,
        allow,
        kind,
        upstream: upstream!,
        timeoutMs: timeoutMs!,
        maxBodyBytes: maxBodyBytes!,
        stripPrefix: stripPrefix!,
        audience: audience!,
        identityHeaders: identityHeaders!,
      };
    }
  }
  if (kind !== "upstream") {
    const root = has("static") ? parseStaticDir(get(value, "static"), field("static"), baseDir, problems) : undefined;
    const spa = optional("spa", (v, f) => boolean(v, f, problems), false);
    if (kind === "static" && problems.length === before) {
      route = { index, name: name!, path: path!, auth: auth!, allow, kind, root: root!, spa: spa! };
    }
  }
  return route && Object.freeze(route);
}

/**
 * Validates a parsed config document (`{ routes: [...] }`) into frozen routes. Problems are
 * pushed onto `problems`; the result is only meaningful when none were added. A relative
 * `static` is resolved against `baseDir` (the config file's directory).
 */
export function parseRoutes(raw: unknown, defaults: RouteDefaults, baseDir: string, problems: string[]): Route[] {
  if (!isTable(raw)) {
    problems.push(`CONFIG_FILE: must be a table with a "routes" array, got ${show(raw)}`);
    return [];
  }
  unknownKeys(raw, TOP_KEYS, "CONFIG_FILE", problems);
  const list = get(raw, "routes");
  if (!Array.isArray(list) || list.length === 0) {
    problems.push(`routes: must be a non-empty array of tables ([[routes]] in TOML), got ${show(list)}`);
    return [];
  }
  const seen: Seen = { names: new Map(), paths: new Map() };
  const routes: Route[] = [];
  list.forEach((item: unknown, index) => {
    const route = parseRoute(item, index, defaults, baseDir, seen, problems);
    if (route) routes.push(route);
  });
  return routes;
}

/**
 * Reads and parses a config file by its extension. `file` is resolved against `cwd` but
 * named in messages as given. Undefined (never a parser's result) when it could not be read
 * or parsed, after a problem.
 */
export function readConfigFile(file: string, problems: string[], cwd: string = process.cwd()): unknown {
  const format = FORMATS[extname(file).toLowerCase()];
  if (!format) {
    problems.push("CONFIG_FILE: must end in .toml, .yaml, .yml or .json");
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(resolve(cwd, file), "utf8");
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    problems.push(`CONFIG_FILE: cannot read ${file} (${typeof code === "string" ? code : firstLine(error)})`);
    return undefined;
  }
  try {
    // An editor's byte-order mark is not part of the document (JSON.parse would choke on it).
    return format.parse(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    const reason = firstLine(error).replace(/^(TOML|YAML|JSON) Parse error: /, "");
    problems.push(`CONFIG_FILE: ${file} is not valid ${format.label}: ${reason}`);
    return undefined;
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n", 1)[0]!.slice(0, 200);
}

/** CONFIG_FILE as an absolute path, or undefined when unset (blank counts as unset). */
export function configFilePath(env: Env, cwd: string = process.cwd()): string | undefined {
  const file = env.CONFIG_FILE?.trim();
  return file ? resolve(cwd, file) : undefined;
}

/** An http(s) URL from the environment, with the messages BACKEND_API_URL always had. */
/**
 * A URL as it may be shown in a message: whatever precedes an "@" in its authority (a
 * password, a token) replaced by `***`. Messages go to a terminal or a journal.
 */
export function withoutCredentials(raw: string): string {
  return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#]*@/i, "$1***@");
}

/** An environment variable that must be an http(s) URL without query, fragment or credentials. */
export function envHttpUrl(name: string, raw: string, problems: string[]): URL | undefined {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    problems.push(`${name} must be an http(s) URL, got "${withoutCredentials(raw)}"`);
    return undefined;
  }
  if (url.search || url.hash || url.username || url.password) {
    problems.push(`${name} must not carry a query, fragment or credentials`);
    return undefined;
  }
  return url;
}

function upstreamRoute(index: number, name: string, path: string, upstream: URL, auth: AuthMode, defaults: RouteDefaults): Route {
  return Object.freeze({
    index,
    name,
    path,
    auth,
    allow: undefined,
    kind: "upstream",
    upstream,
    timeoutMs: defaults.proxyTimeoutMs,
    maxBodyBytes: defaults.maxBodyBytes,
    stripPrefix: false,
    audience: defaults.audience,
    identityHeaders: false,
  });
}

/**
 * The table without a config file: `/api` → BACKEND_API_URL, as before route tables, plus
 * at most one of the two shortcuts for `/`: STATIC_DIR (a static SPA) or FRONTEND_URL (a
 * dev server), both without auth so the sign-in page itself can load.
 */
function environmentRoutes(read: (name: string) => string | undefined, defaults: RouteDefaults, problems: string[], cwd: string): Route[] {
  const routes: Route[] = [];
  const backend = envHttpUrl("BACKEND_API_URL", read("BACKEND_API_URL") ?? DEFAULT_BACKEND_URL, problems);
  if (backend) routes.push(upstreamRoute(0, "api", "/api", backend, "required", defaults));

  const staticDir = read("STATIC_DIR");
  const frontendUrl = read("FRONTEND_URL");
  if (staticDir !== undefined && frontendUrl !== undefined) {
    problems.push("STATIC_DIR and FRONTEND_URL exclude each other (both would serve /): set one, or describe the routes in a CONFIG_FILE");
  } else if (staticDir !== undefined) {
    const root = resolve(cwd, staticDir);
    if (isDirectory(root)) routes.push(Object.freeze({ index: 1, name: "app", path: "/", auth: "none", allow: undefined, kind: "static", root, spa: true }));
    else problems.push(`STATIC_DIR: ${root} is not a directory`);
  } else if (frontendUrl !== undefined) {
    const frontend = envHttpUrl("FRONTEND_URL", frontendUrl, problems);
    if (frontend) routes.push(upstreamRoute(1, "frontend", "/", frontend, "none", defaults));
  }
  return routes;
}

/**
 * The route table the environment asks for: CONFIG_FILE's (resolved against `cwd`), or the
 * one BACKEND_API_URL / STATIC_DIR / FRONTEND_URL imply. Those three are refused next to
 * CONFIG_FILE so nobody has to wonder which wins. Only meaningful when no problem was added.
 */
export function resolveRoutes(env: Env, defaults: RouteDefaults, problems: string[], cwd: string = process.cwd()): Route[] {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  const file = read("CONFIG_FILE");
  if (file === undefined) return environmentRoutes(read, defaults, problems, cwd);

  for (const name of ["BACKEND_API_URL", "STATIC_DIR", "FRONTEND_URL"]) {
    if (read(name) !== undefined) problems.push(`${name} cannot be combined with CONFIG_FILE: put that route in the file`);
  }
  return routesFromFile(file, defaults, problems, cwd);
}

/** A config file's routes: read, parsed, and `static` taken relative to the file's directory. */
export function routesFromFile(file: string, defaults: RouteDefaults, problems: string[], cwd: string = process.cwd()): Route[] {
  const document = readConfigFile(file, problems, cwd);
  if (document === undefined) return [];
  return parseRoutes(document, defaults, dirname(resolve(cwd, file)), problems);
}

/**
 * The resolved table as text for people (`authgate check-config`): one block per route, its
 * target, auth, the settings that differ from `defaults` (all of them when not given) and its
 * allow rule. Upstream URLs are printed: they carry no credentials (those are refused) and
 * this goes to the operator's own terminal.
 */
export function describeRoutes(routes: readonly Route[], defaults?: RouteDefaults): string {
  if (routes.length === 0) return "(no routes)\n";
  const names = Math.max(...routes.map((route) => route.name.length));
  const paths = Math.max(...routes.map((route) => route.path.length));
  const blocks = routes.map((route) => {
    const target = route.kind === "upstream" ? route.upstream.href : `static ${route.root}${route.spa ? " (spa)" : ""}`;
    const lines = [`[${route.index}] ${route.name.padEnd(names)}  ${route.path.padEnd(paths)}  → ${target}  auth = ${route.auth}`];
    const settings: string[] = [];
    if (route.kind === "upstream") {
      if (route.timeoutMs !== defaults?.proxyTimeoutMs) settings.push(`timeout_ms = ${route.timeoutMs}`);
      if (route.maxBodyBytes !== defaults?.maxBodyBytes) settings.push(`max_body_bytes = ${route.maxBodyBytes}`);
      if (route.audience !== defaults?.audience) settings.push(`audience = ${JSON.stringify(route.audience)}`);
      if (route.stripPrefix) settings.push("strip_prefix = true");
      if (route.identityHeaders) settings.push("identity_headers = true");
    }
    if (settings.length > 0) lines.push(`    ${settings.join(", ")}`);
    if (route.allow) {
      // The rule as it is applied: any list match admits, a verified e-mail is needed on top.
      const rules: string[] = [];
      if (route.allow.emails.length > 0) rules.push(`emails ${route.allow.emails.join(", ")}`);
      if (route.allow.emailDomains.length > 0) rules.push(`email_domains ${route.allow.emailDomains.join(", ")}`);
      if (route.allow.roles.length > 0) rules.push(`roles ${route.allow.roles.join(", ")}`);
      const verified = route.allow.emailVerified ? ", with a verified e-mail" : "";
      const keys = route.allow.apiKeys ? "" : ", no API keys";
      lines.push(`    allow: ${rules.length > 0 ? rules.join(" or ") : "any signed-in user"}${verified}${keys}`);
    }
    return lines.join("\n");
  });
  return `${blocks.join("\n")}\n`;
}
