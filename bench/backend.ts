/**
 * The benchmark backend, in its own process so that its memory and CPU are not the
 * gateway's: small JSON answers, deterministic large downloads, hashed uploads.
 * Usage: bun bench/backend.ts  (prints its port on stdout)
 */
import { patternBlock } from "./pattern";

const block = patternBlock();

const server = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  idleTimeout: 60,
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname.endsWith("/download")) {
      const bytes = Number(url.searchParams.get("bytes"));
      let sent = 0;
      const body = new ReadableStream({
        type: "direct",
        async pull(controller: { write(c: Uint8Array): void; flush(): Promise<void>; close(): void }) {
          while (sent < bytes) {
            const chunk = sent + block.length <= bytes ? block : block.subarray(0, bytes - sent);
            controller.write(chunk);
            sent += chunk.length;
            await controller.flush();
          }
          controller.close();
        },
      } as never);
      return new Response(body, { headers: { "content-length": String(bytes), "content-type": "application/octet-stream" } });
    }
    if (url.pathname.endsWith("/upload")) {
      const hasher = new Bun.CryptoHasher("sha256");
      let bytes = 0;
      for await (const chunk of request.body!) {
        hasher.update(chunk);
        bytes += chunk.byteLength;
      }
      return Response.json({ bytes, sha256: hasher.digest("hex") });
    }
    return Response.json({ ok: true, path: url.pathname });
  },
});
console.log(server.port);
