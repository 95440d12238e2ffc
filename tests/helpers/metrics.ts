/** The value of one Prometheus sample, e.g. `authgate_x_total{a="b"}`; undefined when absent. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A gateway's /metrics text, for the bearer of its METRICS_TOKEN. */
export async function metricsOf(gatewayUrl: string, token = "metrics-secret-token"): Promise<string> {
  return (await fetch(gatewayUrl + "/metrics", { headers: { authorization: `Bearer ${token}` } })).text();
}
