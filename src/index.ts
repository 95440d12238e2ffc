/**
 * The entry point. For `start` (the default command) the auth worker is spawned before
 * anything else is imported: Better Auth's imports on its thread overlap everything this one
 * loads (src/main.ts, the configuration, the proxy). Every command is run by src/main.ts.
 *
 * The worker's script is this file's neighbour; `bun build --compile src/index.ts
 * src/auth/worker.ts` embeds it next to this entry point, so the URL holds in the binary too.
 */
import { spawnEarly } from "./auth/remote";

const argv = Bun.argv.slice(2);
const authWorkerUrl = new URL("./auth/worker.ts", import.meta.url).href;
const early = (argv[0] ?? "start") === "start" ? spawnEarly(authWorkerUrl) : undefined;
const { run } = await import("./main");
run(argv, authWorkerUrl, early);
