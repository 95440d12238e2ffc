import { afterAll, describe, expect, test } from "bun:test";
import { backendBase, rawPathAndQuery } from "../src/proxy/target";

describe("rawPathAndQuery", () => {
  test.each<[string, string, string]>([
    ["plain path", "http://gw:3000/api/users", "/api/users"],
    ["root", "http://gw/", "/"],
    ["no path at all", "http://gw", "/"],
    ["repeated keys kept in order", "http://gw/api/x?b=2&a=1&b=3&a=0", "/api/x?b=2&a=1&b=3&a=0"],
    ["%20 in path and query kept", "http://gw/api/a%20b?q=c%20d", "/api/a%20b?q=c%20d"],
    ["+ kept (not turned into a space)", "http://gw/api/x?q=a+b&r=%2B", "/api/x?q=a+b&r=%2B"],
    ["invalid %zz kept", "http://gw/api/%zz?v=%zz%", "/api/%zz?v=%zz%"],
    ["%2F in the path not decoded to a slash", "http://gw/api/files/a%2Fb%2fc", "/api/files/a%2Fb%2fc"],
    ["empty values and bare keys kept", "http://gw/api/x?a=&b&=c&&", "/api/x?a=&b&=c&&"],
    ["empty query kept", "http://gw/api/x?", "/api/x?"],
    ["fragment dropped", "http://gw/api/x?a=1#section", "/api/x?a=1"],
    ["fragment dropped without a query", "http://gw/api/x#frag?not=query", "/api/x"],
    ["https with port and userinfo-free authority", "https://gw.example:8443/api/v1/items?id=1", "/api/v1/items?id=1"],
    ["unicode percent-encoding kept", "http://gw/api/caf%C3%A9?n=%E2%9C%93", "/api/caf%C3%A9?n=%E2%9C%93"],
    ["double slashes in the path kept", "http://gw/api//x", "/api//x"],
    // What Bun leaves in request.url when it could not use the Host (checkProtocol refuses or rebuilds these).
    ["a relative URL is all target", "/api/x?q=%2F#f", "/api/x?q=%2F"],
    ["an authority-form target (CONNECT) has no path", "db.internal:5432", "/"],
  ])("%s", (_name, url, expected) => {
    expect(rawPathAndQuery(url)).toBe(expected);
  });

  describe("on a real Bun server's request.url", () => {
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (request) => new Response(rawPathAndQuery(request.url)),
    });
    afterAll(() => server.stop(true));

    test.each<[string, string]>([
      ["repeated keys, +, %20", "/api/x?b=2&a=1&b=3&q=a+b&s=c%20d"],
      ["invalid %zz", "/api/%zz?v=%zz"],
      ["%2F in the path", "/api/files/a%2Fb"],
    ])("%s", async (_name, target) => {
      const response = await fetch(`http://127.0.0.1:${server.port}${target}`);
      expect(await response.text()).toBe(target);
    });
  });
});

describe("backendBase", () => {
  test.each<[string, string, string]>([
    ["origin with a port", "http://b:8080/", "http://b:8080"],
    ["origin without a trailing slash given", "http://b:8080", "http://b:8080"],
    ["path prefix with a trailing slash", "http://b/v1/", "http://b/v1"],
    ["path prefix without a trailing slash", "http://b/v1", "http://b/v1"],
    ["several trailing slashes", "https://b/v1//", "https://b/v1"],
    ["default port dropped by URL", "https://b:443/", "https://b"],
  ])("%s", (_name, url, expected) => {
    expect(backendBase(new URL(url))).toBe(expected);
  });

  test("base + raw target never doubles the slash", () => {
    expect(backendBase(new URL("http://b/v1/")) + rawPathAndQuery("http://gw/api/x?y=1")).toBe("http://b/v1/api/x?y=1");
  });
});
