import { openAuth } from "../../src/auth/service";
import { loadConfig } from "../../src/config";
import type { RunningGateway } from "./gateway";

const SECRET = "test-secret-test-secret-test-secret-0123"; // the helpers' BETTER_AUTH_SECRET
const quiet = { info() {}, warn() {}, error() {} };

/**
 * Better Auth on a database, opened as the admin commands open it (src/auth/service.ts
 * openAuth): what an operator's tool or another instance would change. A gateway sees those
 * changes only through the database (after its caches expire), never through this process.
 */
export async function openOperator(databaseUrl: string, { secret = SECRET, authUrl = "http://localhost:3000" } = {}) {
  const config = loadConfig({ DATABASE_URL: databaseUrl, BETTER_AUTH_SECRET: secret, BETTER_AUTH_URL: authUrl });
  const { auth, context, close } = await openAuth(config, quiet);
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
    close,
  };
}

/** The operator of a running test gateway's database. */
export const operatorOn = (gw: RunningGateway, databaseUrl: string) => openOperator(databaseUrl, { authUrl: gw.url });

export type Operator = Awaited<ReturnType<typeof openOperator>>;
