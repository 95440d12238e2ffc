/**
 * 1 GiB downloaded and 1 GiB uploaded through the gateway, the bare Bun proxy, and
 * directly, alternating, several rounds. Checks every transfer by sha256 and prints MB/s
 * and each proxy process's peak RSS growth during the transfer.
 * Usage: bun bench/streams.ts [--bytes N] [--rounds N] [--baseline DIR]
 *
 * The order of the paths is rotated every round. `--baseline DIR` adds the gateway of another
 * checkout (an earlier commit, with its node_modules) to the same rounds.
 */
import { patternSha256, patternStream } from "./pattern";
import { median, medianRange, numberFlag, printTable, rotated, signUpCookie, startGateway, startPortPrinter, stringFlag, withPeakRss } from "./lib";

const BYTES = numberFlag("bytes", 1024 ** 3);
const ROUNDS = numberFlag("rounds", 3);

const backend = await startPortPrinter("bench/backend.ts");
const bare = await startPortPrinter("bench/bare-proxy.ts", { BACKEND: backend.url });
const gateway = await startGateway(backend.url);
const cookie = await signUpCookie(gateway.url);
const BASELINE = stringFlag("baseline");
const baseline = BASELINE ? await startGateway(backend.url, {}, BASELINE) : undefined;
const baselineCookie = baseline ? await signUpCookie(baseline.url) : "";
const expected = patternSha256(BYTES);

const targets = [
  { name: "direct", url: backend.url, pid: undefined as number | undefined, headers: {} as Record<string, string> },
  { name: "bare proxy", url: bare.url, pid: bare.proc.pid, headers: {} },
  { name: "gateway", url: gateway.url, pid: gateway.proc.pid, headers: { cookie } },
  ...(baseline ? [{ name: "baseline gateway", url: baseline.url, pid: baseline.proc.pid, headers: { cookie: baselineCookie } }] : []),
];

async function download(url: string, headers: Record<string, string>) {
  const started = performance.now();
  const response = await fetch(`${url}/api/download?bytes=${BYTES}`, { headers });
  const hasher = new Bun.CryptoHasher("sha256");
  let bytes = 0;
  for await (const chunk of response.body!) {
    hasher.update(chunk);
    bytes += chunk.byteLength;
  }
  const seconds = (performance.now() - started) / 1000;
  if (bytes !== BYTES || hasher.digest("hex") !== expected) throw new Error(`download via ${url} corrupted`);
  return BYTES / 1e6 / seconds;
}

async function upload(url: string, headers: Record<string, string>) {
  const started = performance.now();
  const response = await fetch(`${url}/api/upload`, { method: "POST", headers, body: patternStream(BYTES), duplex: "half" } as RequestInit);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`upload via ${url}: ${response.status} ${text}`);
  const result = JSON.parse(text) as { bytes: number; sha256: string };
  const seconds = (performance.now() - started) / 1000;
  if (result.bytes !== BYTES || result.sha256 !== expected) throw new Error(`upload via ${url} corrupted`);
  return BYTES / 1e6 / seconds;
}

// Warm-up: JIT, connection pools and buffers settle before anything is measured.
for (const t of targets) {
  await (await fetch(`${t.url}/api/download?bytes=${64 * 1024 ** 2}`, { headers: t.headers })).arrayBuffer();
  await (await fetch(`${t.url}/api/upload`, { method: "POST", headers: t.headers, body: patternStream(64 * 1024 ** 2), duplex: "half" } as RequestInit)).arrayBuffer();
}

const results = new Map<string, { down: number[]; up: number[]; downRss: number[]; upRss: number[] }>();
for (const t of targets) results.set(t.name, { down: [], up: [], downRss: [], upRss: [] });
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of rotated(targets, round)) {
      const r = results.get(t.name)!;
      const d = await withPeakRss(t.pid, () => download(t.url, t.headers));
      r.down.push(d.result);
      r.downRss.push(d.peakMb - d.baseMb);
      const u = await withPeakRss(t.pid, () => upload(t.url, t.headers));
      r.up.push(u.result);
      r.upRss.push(u.peakMb - u.baseMb);
    }
  }
} finally {
  await gateway.stop();
  await baseline?.stop();
  await bare.stop();
  await backend.stop();
}

const bareDown = median(results.get("bare proxy")!.down);
const bareUp = median(results.get("bare proxy")!.up);
console.log(`\n${(BYTES / 1024 ** 2).toFixed(0)} MiB each way, ${ROUNDS} rounds, every transfer verified by sha256; median (min–max)\n`);
printTable(
  ["path", "download MB/s", "× bare", "peak RSS growth MB", "upload MB/s", "× bare", "peak RSS growth MB"],
  targets.map((t) => {
    const r = results.get(t.name)!;
    return [
      t.name,
      medianRange(r.down),
      (median(r.down) / bareDown).toFixed(2),
      t.pid ? medianRange(r.downRss, 1) : "–",
      medianRange(r.up),
      (median(r.up) / bareUp).toFixed(2),
      t.pid ? medianRange(r.upRss, 1) : "–",
    ];
  }),
);
