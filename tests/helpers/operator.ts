import { createAuth } from "../../src/auth/index";
import { loadConfig } from "../../src/config";
import { openDatabase } from "../../src/db";
import type { RunningGateway } from "./gateway";

const SECRET = "test-secret-test-secret-test-secret-0123"; // the helpers' BETTER_AUTH_SECRET

/**
 * Better Auth on a running gateway's database, as an operator's tool or another instance
 * would open it: what it changes, the gateway sees only through the database (after its
 * caches expire), never through this process.
 */
export async function operatorOn(gw: RunningGateway, databaseUrl: string) {
  const config = loadConfig({ DATABASE_URL: databaseUrl, BETTER_AUTH_SECRET: SECRET, BETTER_AUTH_URL: gw.url });
  const db = openDatabase(config.databaseUrl);
  const quiet = { info() {}, warn() {}, error() {} };
  const auth = createAuth({ config, db, secret: SECRET, logger: quiet });
  const context = await auth.$context;
  return {
    auth,
    context,
    /** A key with no rate limit (what the command line makes by default). */
    async createKey(userId: string, extra: Record<string, unknown> = {}) {
      const created = await auth.api.createApiKey({ body: { userId, name: "test", rateLimitEnabled: false, ...extra } });
      return { id: created.id, key: created.key };
    },
    setRole: (userId: string, role: string) => context.internalAdapter.updateUser(userId, { role }),
    /** What the admin plugin's ban-user does: the flag, then the user's sessions deleted. */
    async ban(userId: string) {
      await context.internalAdapter.updateUser(userId, { banned: true, banReason: "test", banExpires: null });
      await context.internalAdapter.deleteUserSessions(userId);
    },
    deleteKey: (id: string) => context.adapter.delete({ model: "apikey", where: [{ field: "id", value: id }] }),
    expireKeyAt: (id: string, at: Date) => context.adapter.update({ model: "apikey", where: [{ field: "id", value: id }], update: { expiresAt: at } }),
    close: () => db.close(),
  };
}

export type Operator = Awaited<ReturnType<typeof operatorOn>>;
