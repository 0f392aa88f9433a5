/**
 * config.json of a pruned model: the family's own shape keys (so transformers.js and Hugging Face
 * read consistent numbers) and a `zerolm` block with the shape of every layer, which the adapters
 * read back (`zerolm.layers`, `zerolm.headDim`).
 */
import { configShapeKeys, familyDefinition } from '@zerolm/adapters';
import type { KeptShape } from './prune-onnx';

/** One layer of the pruned model as config.json records it. */
export interface PrunedLayerEntry extends KeptShape {
  /** Index of the layer in the source model. */
  readonly sourceLayer: number;
}

export interface PrunedConfigInput {
  /** The source model's config.json as read. */
  readonly raw: Readonly<Record<string, unknown>>;
  readonly modelType: string;
  /** Layers of the source model. */
  readonly sourceLayers: number;
  /** Surviving layers, in order. */
  readonly layers: readonly PrunedLayerEntry[];
  readonly headDim: number;
  /** Where the model came from (recorded as `zerolm.source`). */
  readonly source: string;
  /** Extra fields of the `zerolm` block (budget, plan summary, ...). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/**
 * The pruned model's config: layer count, and head counts and FFN width set to the maximum over
 * layers (non-uniform layers are described by `zerolm.layers`); HF's `pruned_heads` removed (it
 * describes heads removed from a model that still declares them; the graph no longer has them).
 */
export function prunedConfig(input: PrunedConfigInput): Record<string, unknown> {
  const { raw, layers } = input;
  const keys = configShapeKeys(input.modelType);
  const config: Record<string, unknown> = { ...raw };
  const set = (names: readonly string[], value: number) => {
    names.forEach((name, i) => {
      if (i === 0 || name in raw) config[name] = value;
    });
  };
  const max = (f: (l: PrunedLayerEntry) => number) => Math.max(...layers.map(f));
  const heads = max((l) => l.heads);
  let kvHeads = max((l) => l.kvHeads);
  // Configs require heads to be a multiple of kv heads; take the kv heads of the widest layer then.
  if (heads % kvHeads !== 0) kvHeads = layers.find((l) => l.heads === heads)!.kvHeads;
  set(keys.layers, layers.length);
  set(keys.heads, heads);
  if (keys.kvHeads) set(keys.kvHeads, kvHeads);
  set(keys.ffnWidth, max((l) => l.ffnWidth));
  if (keys.headDim) config[keys.headDim] = input.headDim;
  delete config['pruned_heads'];
  // Lists indexed by layer follow the kept layers (a list longer than the layers, as SmolLM3's
  // no_rope_layers may be, keeps its tail after them).
  const family = familyDefinition(input.modelType, 'config.json');
  for (const key of ['layer_types', ...(family.perLayerKeys ?? [])]) {
    const list = raw[key];
    if (!Array.isArray(list) || list.length < input.sourceLayers) continue;
    config[key] = [...layers.map((l) => list[l.sourceLayer]), ...list.slice(input.sourceLayers)];
  }
  family.rewriteConfig?.(config, layers, raw);
  config['zerolm'] = {
    layers: layers.map((l) => ({ heads: l.heads, kvHeads: l.kvHeads, ffnWidth: l.ffnWidth, sourceLayer: l.sourceLayer })),
    headDim: input.headDim,
    source: input.source,
    ...(input.extra ?? {}),
  };
  return config;
}
