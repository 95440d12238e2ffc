import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type Service } from "./lib";

/**
 * nginx (one worker) as a plain reverse proxy with upstream keep-alive: the reference in the
 * benchmark, and the load balancer (round-robin over several URLs) in the scaling test.
 */
export async function startNginx(backendUrl: string | string[]): Promise<Service | undefined> {
  const binary = Bun.which("nginx") ?? (Bun.file("/usr/sbin/nginx").size ? "/usr/sbin/nginx" : undefined);
  if (!binary) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "authgate-nginx-"));
  const port = freePort();
  const servers = [backendUrl]
    .flat()
    .map((url) => `server ${new URL(url).host} max_fails=0;`)
    .join(" ");
  writeFileSync(
    join(dir, "nginx.conf"),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream backend { ${servers} keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      # An instance that is restarting refuses connections: the request goes to the next one.
      proxy_next_upstream error timeout http_502;
      proxy_buffering off;
      proxy_request_buffering off;
      client_max_body_size 0;
    }
  }
}
`,
  );
  const proc = Bun.spawn([binary, "-p", dir, "-c", join(dir, "nginx.conf")], { stdout: "ignore", stderr: "inherit" });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 400; i++) {
    // Any answer (even a 401 from a gateway behind it) means nginx is listening.
    if (await fetch(url + "/healthz").then(() => true, () => false)) break;
    await Bun.sleep(5);
  }
  return {
    proc,
    url,
    async stop() {
      proc.kill("SIGQUIT");
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
