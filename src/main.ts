import { AuthWorkerError, startAuthWorker, type EarlyWorker } from "./auth/remote";
import { ConfigError, loadConfig, routeDefaults, type Config } from "./config";
import { helpText, VERSION } from "./help";
import { createLogger } from "./ops/log";
import { callbackUrl, describeProviders } from "./auth/providers";
import { describeRoutes } from "./routes/config-file";
import { ADMIN_NOUNS } from "./cli/nouns";

function readConfig(): Config {
  try {
    return loadConfig(Bun.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) console.error(`authgate: ${problem}`);
    process.exit(1);
  }
}

/**
 * Runs what opens the database at start-up (the auth worker, or `migrate`'s in-process
 * operations). A database that cannot be opened (its directory cannot be created or written,
 * the file cannot be opened or is not SQLite) ends the process with one line naming
 * DATABASE_URL instead of a stack trace. Only errors that carry a filesystem or SQLite code
 * are reported so; anything else is rethrown as it was.
 */
async function openingDatabase<T>(config: Config, logger: { flush(): void }, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (!(error instanceof Error) || typeof code !== "string" || !/^(E[A-Z0-9]+|SQLITE_[A-Z0-9_]+)$/.test(code)) throw error;
    // The message names the path (or, for a future database URL, the URL): drop credentials
    // and the secret, and keep it to one short line.
    let reason = error.message.startsWith(code) ? error.message : `${code}: ${error.message}`;
    reason = reason.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, "$1***@");
    if (config.authSecret) reason = reason.replaceAll(config.authSecret, "***");
    reason = reason.split("\n")[0]!.slice(0, 300);
    logger.flush();
    console.error(`authgate: DATABASE_URL: cannot open the database (${reason})`);
    process.exit(1);
  }
}

async function main(argv: string[], authWorkerUrl: string, early: EarlyWorker | undefined): Promise<void> {
  const command = argv[0] ?? "start";
  if (command === "--version" || command === "-v") return void console.log(VERSION);
  // Better Auth and the admin commands are loaded only by the commands that use them: the
  // proxy's thread of a running gateway never holds them (its heap stays small, its start fast).
  if (command === "--help" || command === "-h" || command === "help") {
    const { adminUsage } = await import("./cli/commands");
    return void console.log(helpText(adminUsage()));
  }
  // user | sessions | apikey | keys: flags are checked before the configuration is read.
  if (ADMIN_NOUNS.has(command)) {
    const { runAdminCommand } = await import("./cli/commands");
    return runAdminCommand(argv, { readConfig, openingDatabase });
  }
  const config = readConfig();
  if (command === "check-config") {
    // readConfig has printed every problem and exited 1 if there was one.
    process.stdout.write(describeRoutes(config.routes, routeDefaults(config)));
    process.stdout.write(describeProviders(config.providers, config.authUrl.origin));
    return;
  }
  const logger = createLogger(config.logLevel);

  if (command === "migrate") {
    // Opening Better Auth's database migrates it; here that is the whole job.
    const { createAuthOperations } = await import("./auth/service");
    const operations = await openingDatabase(config, logger, () => createAuthOperations(config, logger));
    await operations.close();
    logger.info("migrations applied");
    logger.flush();
    return;
  }
  if (command === "healthcheck") {
    // For container HEALTHCHECKs: the image has no shell or curl.
    const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
    const healthy = await fetch(`http://${host.includes(":") ? `[${host}]` : host}:${config.port}/healthz`, {
      signal: AbortSignal.timeout(2000),
    }).then((response) => response.ok, () => false);
    process.exit(healthy ? 0 : 1);
  }
  if (command !== "start") {
    console.error(`authgate: unknown command "${command}" (expected "start", "migrate", "check-config", "healthcheck", "user", "sessions", "apikey" or "keys"; see --help)`);
    process.exit(1);
  }

  // The worker was spawned by src/index.ts before anything else was imported, and is told its
  // configuration now; the proxy's modules are imported while Better Auth loads on its thread
  // (start-up is the longer of the two, not the sum).
  const authWorker = startAuthWorker(config, logger, authWorkerUrl, { early });
  authWorker.catch(() => {}); // its failure is createGateway's, below; not an unhandled rejection while the import runs
  const { createGateway } = await import("./app");
  const gateway = await openingDatabase(config, logger, () => createGateway(config, { logger, authWorker }));
  const server = gateway.listen();
  logger.info("authgate listening", {
    url: `http://${server.hostname}:${server.port}`,
    routes: gateway.routes.map((route) => route.name),
    ...(config.pages && { signIn: `${config.authUrl.origin}${config.pages.path}/sign-in` }),
  });
  // The callback URL to register at each identity provider.
  for (const provider of config.providers) {
    logger.info("identity provider", { provider: provider.id, callbackUrl: callbackUrl(provider, config.authUrl.origin) });
  }
  if (config.email.delivery === "log") logger.warn("no SMTP_URL: verification and reset mails are written to this log (development only)");
  // SIGHUP re-reads CONFIG_FILE: a valid table replaces the current one, an invalid one is logged and ignored.
  process.on("SIGHUP", () => void gateway.reload());

  const shutdown = async (signal: string) => {
    logger.info("shutting down", { signal, timeoutMs: config.shutdownTimeoutMs });
    await gateway.shutdown(config.shutdownTimeoutMs);
    logger.info("stopped");
    logger.flush();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

/**
 * Runs a command (src/index.ts calls it). `authWorkerUrl` is the worker's script, next to the
 * entry point (embedded there in the compiled binary); `early`, for `start`, the first worker,
 * already loading.
 */
export function run(argv: string[], authWorkerUrl: string, early: EarlyWorker | undefined): void {
  // Whatever ends start-up is one line on stderr, never a stack trace.
  main(argv, authWorkerUrl, early).catch(failed);
}

function failed(error: unknown): never {
  // An error from the auth worker is named as it was there (e.g. RedisDatabaseMismatch).
  const name = error instanceof AuthWorkerError ? error.remoteName : error instanceof Error ? error.name : "";
  console.error(`authgate: start-up failed: ${error instanceof Error ? `${name}: ${error.message.split("\n")[0]}` : String(error)}`);
  process.exit(1);
}
