/**
 * The whole benchmark, one command (`npm run bench`): requests/s and latency (wrk), the auth
 * step alone (mitata), and 1 GiB each way. Everything runs on loopback and stops by itself.
 * wrk and nginx come from Debian; when missing and this runs as root, they are installed.
 */
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

if (!Bun.which("wrk") || !Bun.which("nginx", { PATH: `${process.env.PATH}:/usr/sbin` })) {
  if (process.getuid?.() === 0 && Bun.which("apt-get")) {
    console.log("installing wrk and nginx-light from Debian (apt-get) for the load rows…");
    for (const args of [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk", "nginx-light"]]) {
      const code = await Bun.spawn(args, { stdout: "ignore", stderr: "inherit" }).exited;
      if (code !== 0) console.error(`${args.join(" ")} failed (${code}); continuing with what is installed`);
    }
  } else {
    console.error("wrk (and nginx-light, for the reference row) are needed: apt-get install wrk nginx-light");
  }
}

for (const script of ["bench/http.ts", "bench/ladder.ts", "bench/startup.ts", "bench/footprint.ts", "bench/soak.ts", "bench/auth-step.ts", "bench/streams.ts", "bench/scale.ts"]) {
  console.log(`\n## ${script}\n`);
  const code = await Bun.spawn([process.execPath, join(ROOT, script), ...process.argv.slice(2)], {
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).exited;
  if (code !== 0) process.exit(code);
}
