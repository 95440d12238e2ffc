import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Kysely } from "kysely";
import { BunSqliteDialect } from "kysely-bun-sqlite";

export interface GatewayDatabase {
  /** The one query layer; Better Auth runs on it through its kysely adapter. */
  readonly kysely: Kysely<any>;
  readonly type: "sqlite";
  /** Directory beside the database, where the development secret is kept. */
  readonly dataDir: string;
  /** Queries run so far: the proof that a cached request costs none. */
  readonly queryCount: number;
  close(): Promise<void>;
}

/**
 * Opens the SQLite file (creating its directory) with the pragmas a server needs.
 * bun:sqlite sets none itself: WAL lets readers run beside the writer, busy_timeout
 * makes a second writer wait instead of failing with SQLITE_BUSY, and synchronous=NORMAL
 * is durable under WAL except for the last transactions on power loss.
 */
export function openDatabase(databaseUrl: string, onQuery?: () => void): GatewayDatabase {
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
  let queryCount = 0;
  const kysely = new Kysely<any>({
    dialect: new BunSqliteDialect({ database: cachedStatements as unknown as Database }),
    log: () => {
      queryCount++;
      onQuery?.();
    },
  });

  return {
    kysely,
    type: "sqlite",
    dataDir: dirname(path),
    get queryCount() {
      return queryCount;
    },
    close: () => kysely.destroy(),
  };
}
