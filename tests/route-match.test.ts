import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { compileTable, comparable, isGatewayPath, lenientReadings } from "../src/routes/match";
import type { Route } from "../src/routes/table";
import { upstreamRoute } from "./helpers/routes";

/** A route as the config file would give it; only path and name matter to matching. */
const route = (name: string, path: string): Route => upstreamRoute({ name, path });

const table = compileTable(
  [route("app", "/"), route("api", "/api"), route("admin", "/api/admin"), route("billing", "/api/billing/v2"), route("docs", "/docs")],
  (r) => r.name,
);

/** What the table answers for a path: a route's name and the rest, or the kind. */
function answer(path: string): string {
  const match = table.match(path);
  return match.kind === "route" ? `${match.route} ${match.rest}` : match.kind;
}

describe("matching: segment boundaries, the longest path wins", () => {
  test.each([
    ["/api", "api /"],
    ["/api/", "api /"],
    ["/api/x", "api /x"],
    ["/api/x/y?", "api /x/y?"],
    ["/apix", "app /apix"],
    ["/api/adminx", "api /adminx"],
    ["/api/admin", "admin /"],
    ["/api/admin/", "admin /"],
    ["/api/admin/users/1", "admin /users/1"],
    ["/api/billing", "api /billing"],
    ["/api/billing/v2/invoices", "billing /invoices"],
    ["/api/billing/v3", "api /billing/v3"],
    ["/", "app /"],
    ["/index.html", "app /index.html"],
    ["/docs", "docs /"],
    ["/docs/a/b", "docs /a/b"],
    ["/docsy", "app /docsy"],
  ])("%s → %s", (path, expected) => {
    expect(answer(path)).toBe(expected);
  });
});

describe("matching: the gateway's own paths win over every route", () => {
  test.each([
    ["/api/auth/sign-in/email", "gateway"],
    ["/api/auth", "gateway"],
    ["/healthz", "gateway"],
    ["/readyz", "gateway"],
    ["/metrics", "gateway"],
    ["/swagger", "gateway"],
    ["/swagger/json", "gateway"],
    ["/swaggerx", "gateway"],
    ["/healthz/x", "app /healthz/x"],
    ["/api/authx", "api /authx"],
    ["/metricsx", "app /metricsx"],
  ])("%s → %s", (path, expected) => {
    expect(answer(path)).toBe(expected);
    expect(isGatewayPath(path)).toBe(expected === "gateway");
  });
});

describe("matching: paths compared as a backend would decode them", () => {
  test.each([
    // Printable characters percent-encoded are read decoded.
    ["/api/%61dmin/users", "admin /users"],
    ["/%61pi/admin", "admin /"],
    ["/api/x%2dy", "api /x%2dy"], // the rest is forwarded as sent
    ["/api/billing/v2/%69nvoices", "billing /%69nvoices"],
    // What lenient backends read as another route's path is refused, not guessed at.
    ["/api/ADMIN/users", "ambiguous"], // case-insensitive routers (Express, ASP.NET)
    ["/api/%41dmin", "ambiguous"], // %41 is "A"
    ["/API/x", "ambiguous"], // / for the gateway, /api for a case-insensitive backend
    ["/api/admin;jsessionid=1/users", "ambiguous"], // Tomcat, Jetty and Spring drop ;parameters
    ["/api/admin%3Bx", "ambiguous"], // the same, encoded
    ["/api/admin./users", "ambiguous"], // IIS drops trailing dots
    ["/api/admin%2e", "ambiguous"],
    ["/api%2Fadmin/users", "ambiguous"], // servers that decode %2F before routing
    ["/api/admin%2fusers", "ambiguous"],
    ["/api%5Cadmin", "ambiguous"],
    // The same readings that stay within the route are ordinary paths.
    ["/api/Orders/42", "api /Orders/42"],
    ["/api/files/a%2Fb", "api /files/a%2Fb"],
    ["/api/admin/a%2Fb", "admin /a%2Fb"],
    ["/api/admin/users;v=2", "admin /users;v=2"],
    ["/api/x.", "api /x."],
    ["/docs/README.md", "docs /README.md"],
    ["/api/admin/ALL", "admin /ALL"],
  ])("%s → %s", (path, expected) => {
    expect(answer(path)).toBe(expected);
  });

  test.each([
    ["/api/%61%62", "/api/ab"],
    ["/a%2fb", "/a%2Fb"],
    ["/a%5cb", "/a%5Cb"],
    ["/%7e%7E", "/~~"],
    ["/%24batch%3b%3D", "/$batch;="],
    ["/%25%3f%23", "/%25%3F%23"],
    ["/%e2%82%ac", "/%E2%82%AC"],
    ["/%20%7f", "/%20%7F"],
  ])("comparable(%s) = %s", (path, expected) => {
    expect(comparable(path)).toBe(expected);
  });

  test.each([
    ["/api/admin", ["/api/admin"]],
    ["/API/Admin", ["/api/admin"]],
    ["/api/admin;x=1/users;y", ["/api/admin/users"]],
    ["/api/admin./x..", ["/api/admin/x"]],
    ["/api%2Fadmin%5Cx", ["/api/admin/x"]],
    ["/v1.2/a.b", ["/v1.2/a.b"]],
    // Parameters dropped before or after decoding an encoded separator: two readings.
    ["/b;%5Ca/x", ["/b/x", "/b/a/x"]],
  ])("lenientReadings(%s) = %p", (path, expected) => {
    expect(lenientReadings(path)).toEqual(expected);
  });
});

test("a route whose path names an encoded character is found by either spelling", () => {
  const odata = compileTable([route("api", "/api"), route("batch", "/api/$batch")], (r) => r.name);
  for (const path of ["/api/$batch", "/api/%24batch"]) {
    const match = odata.match(path);
    expect(match.kind === "route" && match.route).toBe("batch");
  }
});

describe("a table without a catch-all", () => {
  const apiOnly = compileTable([route("api", "/api")], (r) => r.name);
  test.each([
    ["/", "none"],
    ["/apix", "none"],
    ["/index.html", "none"],
    ["/api/x", "api"],
  ])("%s → %s", (path, expected) => {
    const match = apiOnly.match(path);
    expect(match.kind === "route" ? match.route : match.kind).toBe(expected);
  });
});

test("lookups walk the path's segments, not the table: 10 000 routes are matched exactly", () => {
  const many = compileTable(
    Array.from({ length: 10_000 }, (_, i) => route(`r${i}`, `/svc${i}`)),
    (r) => r.name,
  );
  expect(many.match("/svc9999/x").kind === "route" && many.match("/svc9999/x")).toMatchObject({ route: "r9999", rest: "/x" });
  expect(many.match("/svc10000").kind).toBe("none");
});

describe("the segment walk agrees with a scan of the whole table (fast-check)", () => {
  // Paths from a small alphabet, so that tables and requests share prefixes often.
  const segment = fc.constantFrom("a", "b", "ab", "api", "v1", "x.y");
  const routePath = fc.array(segment, { minLength: 0, maxLength: 4 }).map((parts) => `/${parts.join("/")}`);
  const requestPath = fc
    .tuple(fc.array(segment, { minLength: 0, maxLength: 6 }), fc.boolean())
    .map(([parts, slash]) => `/${parts.join("/")}${slash && parts.length > 0 ? "/" : ""}`);

  /** The reference: every route whose path is the request's or a prefix of it on a "/" boundary, the longest. */
  function scan(paths: string[], path: string): string | undefined {
    const matching = paths.filter((p) => p === "/" || path === p || path.startsWith(`${p}/`));
    return matching.sort((x, y) => y.length - x.length)[0];
  }

  test("for any table and path, the same route (and the rest after its path)", () => {
    fc.assert(
      fc.property(fc.uniqueArray(routePath, { minLength: 1, maxLength: 12 }), requestPath, (paths, path) => {
        const table = compileTable(paths.map((p, i) => route(`r${i}`, p)), (r) => r.path);
        const match = table.match(path);
        const expected = scan(paths, path);
        if (expected === undefined) return match.kind === "none";
        if (match.kind !== "route" || match.route !== expected) return false;
        const rest = expected === "/" ? path : path.slice(expected.length) || "/";
        return match.rest === rest;
      }),
      { numRuns: 2000, seed: 20261202 },
    );
  });
});

describe("no reading a lenient backend makes puts a path under another route (fast-check)", () => {
  // Route paths as the config allows them: no ";", no segment ending in ".", no two equal ignoring case.
  const routeSegment = fc.constantFrom("a", "b", "Api", "v1", "x-y", "$batch");
  const routePaths = fc
    .uniqueArray(fc.array(routeSegment, { minLength: 0, maxLength: 3 }).map((parts) => `/${parts.join("/")}`), {
      minLength: 1,
      maxLength: 8,
      selector: (path) => path.toLowerCase(),
    });
  // Request paths made of the same names in hostile spellings.
  const spelled = (name: string) =>
    fc.tuple(fc.array(fc.constantFrom("as is", "upper", "lower", "escape a letter"), { minLength: 1, maxLength: 1 }), fc.constantFrom("", ";x=1", ".", "..;", ";"))
      .map(([[how], suffix]) => {
        let text = how === "upper" ? name.toUpperCase() : how === "lower" ? name.toLowerCase() : name;
        if (how === "escape a letter") text = text.replace(/[a-z$]/i, (c) => `%${c.charCodeAt(0).toString(16)}`);
        return text + (suffix === "..;" ? "" : suffix);
      });
  const requestPath = fc
    .array(fc.tuple(fc.constantFrom("a", "b", "api", "Api", "v1", "x-y", "$batch", "z", ";x", "%2F", "...", "%2561pi"), fc.constantFrom("/", "/", "/", "%2F", "%5c")), { minLength: 1, maxLength: 5 })
    .chain((parts) => fc.tuple(...parts.map(([name, separator]) => spelled(name).map((text) => ({ text, separator })))))
    .map((parts) => parts.map(({ text, separator }, i) => (i === 0 ? "/" : parts[i - 1]!.separator) + text).join(""));

  const readings: Record<string, (key: string) => string> = {
    "decodes twice": (key) => comparable(key.replace(/%25/g, "%")),
    "case-insensitive": (key) => key.toLowerCase(),
    "drops ;parameters": (key) => key.replace(/;[^/]*/g, ""),
    "drops trailing dots": (key) => key.replace(/\.+(?=\/|$)/g, ""),
    "decodes %2F and %5C": (key) => key.replace(/%2F|%5C/gi, "/"),
    "merges slashes": (key) => key.replace(/\/{2,}/g, "/"),
  };
  const names = Object.keys(readings);

  function scan(paths: string[], key: string, ignoreCase: boolean): string | undefined {
    const same = (a: string, b: string) => (ignoreCase ? a.toLowerCase() === b.toLowerCase() : a === b);
    const matching = paths.filter((p) => p === "/" || same(key, p) || (key.length > p.length && same(key.slice(0, p.length), p) && key[p.length] === "/"));
    return matching.sort((x, y) => y.length - x.length)[0];
  }

  test("a path is either refused as ambiguous or every reading of it finds the same route", () => {
    fc.assert(
      fc.property(routePaths, requestPath, (paths, path) => {
        const table = compileTable(paths.map((p, i) => route(`r${i}`, p)), (r) => r.path);
        const match = table.match(path);
        if (match.kind !== "route") return true;
        const key = comparable(path);
        // Every combination of the readings, as one backend might apply several, in either
        // order of decoding separators and dropping the rest.
        for (const order of [names, [names[0]!, names[1]!, names[4]!, names[2]!, names[3]!, names[5]!]]) {
          for (let mask = 0; mask < 1 << order.length; mask++) {
            let read = key;
            for (let i = 0; i < order.length; i++) if (mask & (1 << i)) read = readings[order[i]!]!(read);
            const found = scan(paths, read, (mask & 2) === 2);
            if (found !== match.route) throw new Error(`${path} → ${match.route}, but read ${read} (${order.filter((_, i) => mask & (1 << i)).join(", ")}) → ${found}`);
          }
        }
        return true;
      }),
      { numRuns: Number(process.env.MATCH_RUNS ?? 3000), seed: Number(process.env.MATCH_SEED ?? 20261202) },
    );
  });
});
