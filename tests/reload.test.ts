import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startBackend } from "./helpers/backend";
import { until } from "./helpers/feed";
import { signUp, startGateway, tempDir } from "./helpers/gateway";
import { metricsOf, sample } from "./helpers/metrics";
import { spawnGateway } from "./helpers/process";

/**
 * Reloading the route table: a valid file replaces the table at once while requests in flight
 * finish on the one they started on; an invalid file is logged problem by problem and the
 * current table stays. In-process through gateway.reload(), and through SIGHUP on a process.
 */

const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A backend that holds each request until `release()`, answering with its own name. */
function holdingBackend(name: string) {
  const held: (() => void)[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      if (new URL(request.url).pathname.endsWith("/hold")) await new Promise<void>((resolve) => held.push(resolve));
      return new Response(`${name} ${new URL(request.url).pathname}`);
    },
  });
  cleanups.push(() => server.stop(true));
  return {
    url: `http://127.0.0.1:${server.port}`,
    get held() {
      return held.length;
    },
    release: () => held.splice(0).forEach((resolve) => resolve()),
  };
}

const table = (upstream: string, extra = "") => `[[routes]]\nname = "api"\npath = "/api"\nupstream = "${upstream}"\nauth = "none"\n${extra}`;

describe("gateway.reload()", () => {
  test("a valid file replaces the table; the request in flight finishes on the old one", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const before = holdingBackend("before");
    const after = holdingBackend("after");
    const file = join(dir.path, "authgate.toml");
    writeFileSync(file, table(before.url));
    const gw = await startGateway({ CONFIG_FILE: file, METRICS_TOKEN: "metrics-secret-token" }, dir.path);
    cleanups.push(() => gw.stop());

    const inFlight = fetch(`${gw.url}/api/hold`);
    await until(() => before.held === 1);
    writeFileSync(file, table(after.url, `\n[[routes]]\nname = "extra"\npath = "/extra"\nupstream = "${after.url}"\nauth = "none"\n`));
    expect(gw.gateway.reload()).toEqual({ ok: true });
    expect(gw.gateway.routes.map((route) => route.name)).toEqual(["api", "extra"]);

    expect(await (await fetch(`${gw.url}/api/x`)).text()).toBe("after /api/x");
    expect(await (await fetch(`${gw.url}/extra/y`)).text()).toBe("after /extra/y");
    before.release();
    const finished = await inFlight;
    expect(finished.status).toBe(200);
    expect(await finished.text()).toBe("before /api/hold");
    expect(sample(await metricsOf(gw.url), 'authgate_config_reloads_total{result="ok"}')).toBe(1);
  });

  test("an invalid file is logged problem by problem and the current table keeps serving", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const backend = holdingBackend("kept");
    const file = join(dir.path, "authgate.yaml");
    writeFileSync(file, `routes:\n  - name: api\n    path: /api\n    upstream: ${backend.url}\n    auth: none\n`);
    const gw = await startGateway({ CONFIG_FILE: file, METRICS_TOKEN: "metrics-secret-token" }, dir.path);
    cleanups.push(() => gw.stop());

    writeFileSync(file, `routes:\n  - name: api\n    path: /api\n    upstream: not-a-url\n    auht: none\n`);
    const result = gw.gateway.reload();
    expect(result).toEqual({ ok: false, problems: ['routes[0]: unknown key "auht"', "routes[0].upstream: not an http(s) URL"] });
    const logged = gw.logLines.map((line) => JSON.parse(line)).filter((line) => line.msg.startsWith("configuration not reloaded"));
    expect(logged.map((line) => line.problem)).toEqual(['routes[0]: unknown key "auht"', "routes[0].upstream: not an http(s) URL"]);
    expect(logged.every((line) => line.level === "error")).toBe(true);

    expect(await (await fetch(`${gw.url}/api/still`)).text()).toBe("kept /api/still");
    writeFileSync(file, "routes: [\n");
    expect(gw.gateway.reload().ok).toBe(false);
    expect(await (await fetch(`${gw.url}/api/still`)).text()).toBe("kept /api/still");
    const metrics = await metricsOf(gw.url);
    expect(sample(metrics, 'authgate_config_reloads_total{result="error"}')).toBe(2);
    expect(sample(metrics, 'authgate_config_reloads_total{result="ok"}') ?? 0).toBe(0);
  });

  test("a reload that adds an allow rule applies to the next request of a cached session", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const backend = startBackend();
    cleanups.push(() => backend.stop());
    const file = join(dir.path, "authgate.toml");
    const route = `[[routes]]\nname = "api"\npath = "/api"\nupstream = "${backend.url}"\n`;
    writeFileSync(file, route);
    const gw = await startGateway({ CONFIG_FILE: file }, dir.path);
    cleanups.push(() => gw.stop());
    backend.trustGateway(gw.url, gw.url);
    const { cookie } = await signUp(gw.url);
    expect((await fetch(`${gw.url}/api/x`, { headers: { cookie } })).status).toBe(200);
    writeFileSync(file, `${route}allow = { emails = ["someone-else@example.test"] }\n`);
    expect(gw.gateway.reload().ok).toBe(true);
    const refused = await fetch(`${gw.url}/api/x`, { headers: { cookie } });
    expect(refused.status).toBe(403);
  });
});

describe("SIGHUP on a running process", () => {
  test("re-reads CONFIG_FILE: a valid table serves at once (the request in flight finishes on the old one), an invalid one is logged and the old one stays", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const one = holdingBackend("one");
    const two = holdingBackend("two");
    const file = join(dir.path, "authgate.json");
    const json = (upstream: string) => JSON.stringify({ routes: [{ name: "api", path: "/api", upstream, auth: "none" }] });
    writeFileSync(file, json(one.url));
    const gateway = await spawnGateway(undefined, { env: { CONFIG_FILE: file, DATABASE_URL: join(dir.path, "authgate.db") } });
    cleanups.push(() => gateway.stop());
    expect(await (await fetch(`${gateway.url}/api/a`)).text()).toBe("one /api/a");

    // A request in flight on the old table while the signal arrives.
    const inFlight = fetch(`${gateway.url}/api/hold`);
    await until(() => one.held === 1);
    writeFileSync(file, json(two.url));
    gateway.proc.kill("SIGHUP");
    await until(() => gateway.log().includes('"msg":"configuration reloaded"'));
    expect(await (await fetch(`${gateway.url}/api/b`)).text()).toBe("two /api/b");
    one.release();
    expect(await (await inFlight).text()).toBe("one /api/hold");

    writeFileSync(file, '{"routes": [{"name": "api", "path": "api", "upstream": "x"}]');
    gateway.proc.kill("SIGHUP");
    await until(() => gateway.log().includes("configuration not reloaded"));
    expect(gateway.log()).toContain("is not valid JSON");
    expect(await (await fetch(`${gateway.url}/api/c`)).text()).toBe("two /api/c");
    expect(await gateway.stop()).toBe(0);
  });
});
