import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const SECRET_FILE = ".authgate-secret";

/**
 * The configured secret, or in development one generated once and kept beside the
 * database: sessions and the encrypted signing key must survive a restart, and a
 * changed secret makes every JWT signature fail ("Failed to decrypt private key").
 */
export function resolveAuthSecret(
  configured: string | undefined,
  dataDir: string,
  warn: (message: string) => void,
): string {
  if (configured) return configured;
  const path = join(dataDir, SECRET_FILE);
  if (existsSync(path)) {
    const kept = readFileSync(path, "utf8").trim();
    if (kept.length >= 32) {
      warn(`BETTER_AUTH_SECRET is not set: using the development secret kept in ${path}`);
      return kept;
    }
  }
  const generated = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  // With PostgreSQL nothing else has created ./data yet.
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(path, generated + "\n", { mode: 0o600 });
  chmodSync(path, 0o600);
  warn(
    `BETTER_AUTH_SECRET is not set: generated one and kept it in ${path} (development only; set BETTER_AUTH_SECRET in production)`,
  );
  return generated;
}
