import { describe, expect, test } from "bun:test";
import { join } from "node:path";

/** The JSON-lines logger, run in a process of its own so that its stderr can be read whole. */
async function linesOf(script: string): Promise<Record<string, unknown>[]> {
  const proc = Bun.spawn([process.execPath, "-e", `import { createLogger } from ${JSON.stringify(join(import.meta.dir, "../src/ops/log.ts"))};\n${script}`], {
    stdout: "ignore",
    stderr: "pipe",
  });
  const text = await new Response(proc.stderr).text();
  expect(await proc.exited).toBe(0);
  return text.trim() === "" ? [] : text.trim().split("\n").map((line) => JSON.parse(line));
}

describe("createLogger (JSON lines on stderr)", () => {
  test("level, time, the fields in order, then msg; undefined fields left out", async () => {
    const [line] = await linesOf(`createLogger("info", { pretty: false }).info("request", { requestId: "r1", path: '/a"b', userId: undefined, status: 200 });`);
    expect(Object.keys(line!)).toEqual(["level", "time", "requestId", "path", "status", "msg"]);
    expect(line).toMatchObject({ level: "info", requestId: "r1", path: '/a"b', status: 200, msg: "request" });
    expect(new Date(line!.time as string).toISOString()).toBe(line!.time as string);
  });

  test.each<[string, string[]]>([
    ["debug", ["info", "warn", "error"]],
    ["info", ["info", "warn", "error"]],
    ["warn", ["warn", "error"]],
    ["error", ["error"]],
    ["silent", []],
  ])("at %s it writes %p", async (level, expected) => {
    const lines = await linesOf(`const log = createLogger(${JSON.stringify(level)}, { pretty: false }); log.info("i"); log.warn("w"); log.error("e");`);
    expect(lines.map((line) => line.level)).toEqual(expected);
  });

  test("no fields, or only undefined ones: level, time and msg alone", async () => {
    const lines = await linesOf(`const log = createLogger("info", { pretty: false }); log.info("a"); log.warn("b", {}); log.error("c", { gone: undefined });`);
    expect(lines.map((line) => Object.keys(line))).toEqual([["level", "time", "msg"], ["level", "time", "msg"], ["level", "time", "msg"]]);
    expect(lines.map((line) => line.msg)).toEqual(["a", "b", "c"]);
  });

  test("the time is each line's own: a line a millisecond later says so", async () => {
    // The formatted time is reused within one millisecond; the next one must not reuse it.
    const lines = await linesOf(`const log = createLogger("info", { pretty: false });
      const t0 = Date.now(); log.info("first", { at: t0 });
      while (Date.now() === t0) {}
      const t1 = Date.now(); log.info("second", { at: t1 });`);
    expect(lines.map((line) => new Date(line.time as string).getTime())).toEqual(lines.map((line) => line.at as number));
    expect(lines[0]!.time).not.toBe(lines[1]!.time);
  });

  test("fields that cannot be serialised still give a line saying what happened", async () => {
    const [line] = await linesOf(`const cycle = {}; cycle.self = cycle; createLogger("info", { pretty: false }).error("failed", { cycle, big: 1n });`);
    expect(line).toMatchObject({ level: "error", msg: "failed", logError: "fields could not be serialised" });
  });

  test("lines written just before the process exits are not lost (the buffer is flushed on exit)", async () => {
    const lines = await linesOf(`const log = createLogger("info", { pretty: false }); for (let i = 0; i < 500; i++) log.info("n", { i }); process.exit(0);`);
    expect(lines.map((line) => line.i)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });
});
