/** Which layer outputs a forward pass returns, and where it may stop. */

export interface ForwardOptions {
  /** Layer outputs to return (names from `layers()`); default: every one. */
  layers?: string[];
  /** Stop after the last requested layer (default true). */
  stopEarly?: boolean;
}

/** Check the requested names against the network's layer list; return them and the index of the last one. */
export function selectLayers(all: string[], requested: string[] | undefined, what: string): { wanted: Set<string>; last: number } {
  const req = requested ?? all;
  const unknown = req.filter((n) => !all.includes(n));
  if (unknown.length) throw new Error(`${what}: unknown layer${unknown.length > 1 ? "s" : ""} ${unknown.map((n) => JSON.stringify(n)).join(", ")}; the layers are ${all.join(", ")}`);
  if (req.length === 0) throw new Error(`${what}: no layer requested`);
  return { wanted: new Set(req), last: Math.max(...req.map((n) => all.indexOf(n))) };
}
