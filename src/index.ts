import { createGateway } from "./app";
import { createAuthOperations } from "./auth/service";
import { ConfigError, loadConfig, type Config } from "./config";
import { createLogger } from "./ops/log";

function readConfig(): Config {
  try {
    return loadConfig(Bun.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) console.error(`authgate: ${problem}`);
    process.exit(1);
  }
}

async function main(argv: string[]): Promise<void> {
  const command = argv[0] ?? "start";
  const config = readConfig();
  const logger = createLogger(config.logLevel);

  if (command === "migrate") {
    // Opening Better Auth's database migrates it; here that is the whole job.
    const operations = await createAuthOperations(config, logger);
    await operations.close();
    logger.info("migrations applied");
    logger.flush();
    return;
  }
  if (command !== "start") {
    console.error(`authgate: unknown command "${command}" (expected "start" or "migrate")`);
    process.exit(1);
  }

  const gateway = await createGateway(config, { logger });
  const server = gateway.listen();
  logger.info("authgate listening", { url: `http://${server.hostname}:${server.port}`, backend: "configured" });

  const shutdown = async (signal: string) => {
    logger.info("shutting down", { signal });
    await gateway.close();
    logger.flush();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

await main(Bun.argv.slice(2));
