import type { Config } from "../config";

/** Config as it crosses to the auth worker: structured clone has no URL objects. */
export type WireConfig = Omit<Config, "backendUrl" | "authUrl"> & { backendUrl: string; authUrl: string };

export function configToWire(config: Config): WireConfig {
  return { ...config, backendUrl: config.backendUrl.href, authUrl: config.authUrl.href };
}

export function configFromWire(wire: WireConfig): Config {
  return Object.freeze({ ...wire, backendUrl: new URL(wire.backendUrl), authUrl: new URL(wire.authUrl) });
}
