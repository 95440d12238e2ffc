/**
 * The soak row: 3 × 60 000 authenticated requests through one gateway (50 at a time, each
 * answer read whole), the gateway's RSS after each batch. A leak shows as RSS that keeps
 * growing: after the third batch it should be within 16 MB of after the first.
 * Usage: bun bench/soak.ts [--batches N] [--requests N]
 */
import { numberFlag, printTable, rssMb, signUpCookie, startGateway, startPortPrinter } from "./lib";

const BATCHES = numberFlag("batches", 3);
const REQUESTS = numberFlag("requests", 60_000);
const CONCURRENCY = 50;
const LIMIT_MB = 16;

const backend = await startPortPrinter("bench/backend.ts");
const gateway = await startGateway(backend.url);
try {
  const cookie = await signUpCookie(gateway.url);
  const rows: (string | number)[][] = [];
  const after: number[] = [];
  for (let batch = 1; batch <= BATCHES; batch++) {
    let issued = 0;
    let failed = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (issued < REQUESTS) {
          issued++;
          const response = await fetch(gateway.url + "/api/soak", { headers: { cookie } });
          await response.arrayBuffer();
          if (response.status !== 200) failed++;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    if (failed > 0) throw new Error(`batch ${batch}: ${failed} answers were not 200`);
    after.push(rssMb(gateway.proc.pid));
    rows.push([batch, REQUESTS, Math.round(REQUESTS / seconds), after.at(-1)!.toFixed(1), (after.at(-1)! - after[0]!).toFixed(1)]);
    console.error(`batch ${batch}/${BATCHES} done`);
  }
  console.log(`\n${BATCHES} × ${REQUESTS} authenticated requests, ${CONCURRENCY} at a time (fetch from this process)\n`);
  printTable(["batch", "requests", "requests/s", "gateway RSS after, MB", "growth since batch 1, MB"], rows);
  const growth = after.at(-1)! - after[0]!;
  console.log(`\nRSS growth from the first batch to the last: ${growth.toFixed(1)} MB (limit ${LIMIT_MB} MB): ${growth <= LIMIT_MB ? "met" : "MISSED"}`);
} finally {
  await gateway.stop();
  await backend.stop();
}
