/**
 * The floor cost of proxying on Bun: Bun.serve + fetch, streaming both ways, no auth,
 * no Elysia. Same fetch options as the gateway, so only the gateway's own work differs.
 * Usage: BACKEND=http://127.0.0.1:PORT [PORT=N] bun bench/bare-proxy.ts  (prints its port)
 */
const backend = process.env.BACKEND!;
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  async fetch(request) {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.delete("host");
    const upstream = await fetch(backend + url.pathname + url.search, {
      method: request.method,
      headers,
      body: request.method === "GET" || request.method === "HEAD" ? undefined : request.body,
      duplex: "half",
      redirect: "manual",
      decompress: false,
      signal: request.signal,
    });
    return new Response(upstream.body, { status: upstream.status, headers: upstream.headers });
  },
});
console.log(server.port);
