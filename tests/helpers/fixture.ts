import { afterAll, beforeAll } from "bun:test";
import pg from "pg";
import type { GatewayOptions } from "../../src/app";
import { startBackend, type TestBackend } from "./backend";
import { startGateway, tempDir, type RunningGateway } from "./gateway";

/**
 * A test file's recording backend and the gateways it starts, all stopped (in reverse order)
 * after the file's tests. Call at the top level of a test file.
 */
export function useGateways() {
  let backend: TestBackend | undefined;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  beforeAll(() => {
    backend = startBackend();
    cleanups.push(() => backend!.stop());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  return {
    get backend(): TestBackend {
      return backend!;
    },
    /** Runs `cleanup` after the file's tests. */
    defer(cleanup: () => Promise<unknown> | unknown) {
      cleanups.push(cleanup);
    },
    /** A gateway in front of the backend, on its own SQLite file; the backend trusts its JWKS. */
    async gatewayWith(env: Record<string, string> = {}, options: Omit<GatewayOptions, "logger"> = {}): Promise<RunningGateway> {
      const dir = tempDir();
      const gw = await startGateway({ BACKEND_API_URL: backend!.url, ...env }, dir.path, options);
      backend!.trustGateway(gw.url, gw.url);
      cleanups.push(async () => {
        await gw.stop();
        dir.remove();
      });
      return gw;
    },
  };
}

/** A database of its own on the test PostgreSQL server, dropped (even with clients left) by `drop`. */
export async function scratchPostgres(adminUrl: string, prefix: string) {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const database = `${prefix}_${crypto.randomUUID().replaceAll("-", "")}`;
  await admin.query(`create database ${database}`);
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return {
    url: url.href,
    async drop() {
      await admin.query(`drop database if exists ${database} with (force)`);
      await admin.end();
    },
  };
}
