import type { Config } from "../config";

/**
 * Config as it crosses to the auth worker: structured clone has no URL objects. The route
 * table stays on the proxy's thread (Better Auth does not route requests).
 */
export type WireConfig = Omit<Config, "authUrl" | "routes"> & { authUrl: string };

export function configToWire({ routes: _routes, ...config }: Config): WireConfig {
  return { ...config, authUrl: config.authUrl.href };
}

export function configFromWire(wire: WireConfig): Config {
  return Object.freeze({ ...wire, routes: [], authUrl: new URL(wire.authUrl) });
}
