import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Kysely, PostgresDialect, sql } from "kysely";
// Its ES module by path: the package has no "exports", and Bun's runtime then loads its "main",
// the CommonJS build, which requires kysely's CommonJS build: a second kysely (≈55 ms at
// start-up, its heap twice) beside the ES one everything else imports. The binary's bundle
// was not affected (the bundler prefers "module").
import { BunSqliteDialect } from "kysely-bun-sqlite/dist/index.js";

export interface GatewayDatabase {
  /** The one query layer; Better Auth runs on it through its kysely adapter. */
  readonly kysely: Kysely<any>;
  readonly type: "sqlite" | "postgres";
  /** Where the development secret is kept: beside the SQLite file, or ./data for PostgreSQL. */
  readonly dataDir: string;
  /**
   * Runs `work` while holding the database-wide start-up lock, so that instances starting at
   * the same moment migrate and provision the signing key one after the other.
   */
  withStartupLock<T>(work: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** Called once per query (the auth worker counts them: a cached request must run none). */
  onQuery?: () => void;
  /** Connections in the PostgreSQL pool. @default 10 */
  poolSize?: number;
  /** Told when a PostgreSQL connection fails outside a query (the server restarted). */
  onConnectionError?(error: unknown): void;
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** SQLite file path or `postgres://` URL → the database, ready for Better Auth. */
export function openDatabase(databaseUrl: string, options: DatabaseOptions = {}): GatewayDatabase {
  return isPostgresUrl(databaseUrl) ? openPostgres(databaseUrl, options) : openSqlite(databaseUrl, options);
}


/**
 * Opens the SQLite file (creating its directory) with the pragmas a server needs.
 * bun:sqlite sets none itself: WAL lets readers run beside the writer, busy_timeout
 * makes a second writer wait instead of failing with SQLITE_BUSY, and synchronous=NORMAL
 * is durable under WAL except for the last transactions on power loss.
 */
function openSqlite(databaseUrl: string, { onQuery }: DatabaseOptions): GatewayDatabase {
  const path = resolve(databaseUrl);
  mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path, { create: true, strict: false });
  sqlite.exec("PRAGMA journal_mode = WAL");
  sqlite.exec("PRAGMA busy_timeout = 5000");
  sqlite.exec("PRAGMA synchronous = NORMAL");
  sqlite.exec("PRAGMA foreign_keys = ON");

  // `db.query` keeps a prepared statement per SQL text, so repeated queries skip the
  // parse step; the dialect itself would call `prepare` on every query.
  const cachedStatements = {
    prepare: (sql: string) => sqlite.query(sql),
    close: () => sqlite.close(),
  };
  const kysely = new Kysely<any>({
    dialect: new BunSqliteDialect({ database: cachedStatements as unknown as Database }),
    log: onQuery && (() => onQuery()),
  });

  return {
    kysely,
    type: "sqlite",
    dataDir: dirname(path),
    // One file, one process writing at a time (busy_timeout): nothing more is needed.
    withStartupLock: (work) => work(),
    close: () => kysely.destroy(),
  };
}

/** Any constant: the key of the advisory lock authgate instances take while starting. */
const STARTUP_LOCK_KEY = 0x61757468; // "auth"

function openPostgres(databaseUrl: string, { onQuery, poolSize = 10, onConnectionError }: DatabaseOptions): GatewayDatabase {
  // At least 2: the start-up lock holds one connection while migrations use another.
  // pg is loaded only for a PostgreSQL DATABASE_URL: the SQLite default never pays for it.
  const pg = require("pg") as typeof import("pg");
  const pool = new pg.Pool({ connectionString: databaseUrl, max: Math.max(2, poolSize) });
  // A connection's error with nobody listening is thrown, and ends the auth worker. The pool
  // listens only while a client is idle (pg-pool removes its listener at checkout); a checked-
  // out client can get one too: PostgreSQL's "terminating connection" (57P01) arriving in the
  // same read as the last reply of a query, before kysely has released the client, or the
  // socket's end after a FATAL on a client handed to the next caller. Every client gets a
  // listener of its own; pg has already marked it unusable, so the pool drops it on release,
  // and the query in flight, if any, reports the error itself.
  const lost = (error: unknown) => onConnectionError?.(error);
  pool.on("error", lost);
  pool.on("connect", (client) => client.on("error", lost));
  const kysely = new Kysely<any>({ dialect: new PostgresDialect({ pool }), log: onQuery && (() => onQuery()) });

  return {
    kysely,
    type: "postgres",
    dataDir: resolve("data"),
    async withStartupLock(work) {
      return kysely.connection().execute(async (connection) => {
        await sql`select pg_advisory_lock(${STARTUP_LOCK_KEY})`.execute(connection);
        try {
          return await work();
        } finally {
          await sql`select pg_advisory_unlock(${STARTUP_LOCK_KEY})`.execute(connection);
        }
      });
    },
    close: () => kysely.destroy(),
  };
}
