import type { AuthWorker } from "../auth/remote";
import type { SigningKeys } from "../token/signing-key";

/**
 * Each dependency's state for /readyz: "ok" or what is wrong. Upstreams are not probed: a
 * backend outage must not take the gateway out of a load balancer.
 */
export function createReadiness(auth: AuthWorker, signingKeys: SigningKeys, hasRedis: boolean) {
  return async (): Promise<Record<string, string>> => ({
    // While the worker is being replaced, the database cannot be asked either.
    auth: auth.state,
    database: await withTimeout(auth.ping(), 2000).then(
      () => "ok",
      () => "unreachable",
    ),
    signingKey: await withTimeout(signingKeys.current(), 2000).then(
      () => "ok",
      () => "not loadable",
    ),
    ...(hasRedis && {
      redis: await withTimeout(auth.pingRedis(), 2000).then(
        (up) => (up ? "ok" : "unreachable"),
        () => "unreachable",
      ),
    }),
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: Timer;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("timeout")), ms))),
  ]).finally(() => clearTimeout(timer));
}
