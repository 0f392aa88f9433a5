/** Shared helpers of the planner's search and scoring tests. */
import { flexibertToGraph, loadHfModel, specToGraph } from '@zerolm/adapters';
import { hasPrunableHeads, Rng, type Layer, type ModuleGraph, type PrunePlan } from '@zerolm/core';
import { DEFAULT_FIXTURES, ensureFixtures, fixturePath, type FixtureName, type ModelSpec, type PlantedUnit } from '@zerolm/test-fixtures';

export const PLANTED = ['bert-planted', 'gpt2-planted', 'llama-planted'] as const;

/**
 * The planted all-zero units of a named fixture in layer `index` that are whole units: kv groups
 * (a planted head is one only without GQA) and FFN neurons.
 */
export function plantedUnits(name: FixtureName, index: number, layer: Layer): { groups: number[]; neurons: number[] } {
  const spec: ModelSpec = DEFAULT_FIXTURES[name];
  const planted: readonly PlantedUnit[] = spec.planted ?? [];
  const a = layer.attention;
  const groups: number[] = [];
  const neurons: number[] = [];
  for (const p of planted) {
    if (p.layer !== index) continue;
    if ('kvGroup' in p) groups.push(p.kvGroup);
    else if ('head' in p && a.heads === a.kvHeads) groups.push(p.head);
    else if ('neuron' in p) neurons.push(p.neuron);
  }
  return { groups, neurons };
}

const graphs = new Map<string, ModuleGraph>();

/** The module graph of a named fixture (generated on first use, loaded once per test file). */
export function fixtureGraph(name: string): ModuleGraph {
  let graph = graphs.get(name);
  if (!graph) {
    ensureFixtures([name]);
    graph = loadHfModel(fixturePath(name)).graph;
    graphs.set(name, graph);
  }
  return graph;
}

/** A small GQA decoder as a zerolm-spec (gated FFN, biases), no ONNX file needed. */
export function smallGqaSpecGraph(): ModuleGraph {
  return specToGraph({
    format: 'zerolm-spec',
    name: 'small-gqa',
    hiddenSize: 32,
    bias: true,
    layers: [
      { heads: 4, kvHeads: 2, headDim: 8, ffnWidth: 40, gated: true, repeat: 2 },
      { heads: 6, kvHeads: 3, headDim: 8, ffnWidth: 52, gated: true },
    ],
    init: { kind: 'normal', std: 0.1 },
  });
}

/**
 * A FlexiBERT graph with every kind of token mixer: attention (SDP), attention with an extra
 * `mix` matrix (WMA), a linear transform without heads (DFT) and a convolution mixer (DSC), so
 * matrices that no unit cuts and layers without prunable heads are covered.
 */
export function mixedMixerGraph(): ModuleGraph {
  const layer = (operation_type: 'SA' | 'LT' | 'DSC', operation_parameter: string | number, num_operation_heads: number) => ({
    operation_type,
    operation_parameter,
    num_operation_heads,
    feed_forward_dimension: 512,
    num_feed_forward: 1,
  });
  return flexibertToGraph({
    id: 'mixed',
    hparams: {
      model_hparam_overrides: {
        hidden_size: 256,
        nas_config: { encoder_layers: [layer('SA', 'SDP', 4), layer('SA', 'WMA', 2), layer('LT', 'DFT', 2), layer('DSC', 9, 4)] },
      },
    },
  } as never);
}

/** A BERT-base-shaped spec graph (12 layers, hidden 768, 12 heads of 64, FFN 3072, biases). */
export function bertBaseSpecGraph(): ModuleGraph {
  return specToGraph({
    format: 'zerolm-spec',
    name: 'bert-base-shape',
    hiddenSize: 768,
    bias: true,
    layers: [{ heads: 12, headDim: 64, ffnWidth: 3072, repeat: 12 }],
  });
}

/** A random valid plan: random subsets of groups (where heads can be cut) and neurons, optionally one layer dropped. */
export function randomPlan(graph: ModuleGraph, rng: Rng, options: { drop?: boolean } = {}): PrunePlan {
  const subset = (n: number) => {
    const keep = Array.from({ length: n }, (_, i) => i).filter(() => rng.uniform() < 0.6);
    return keep.length > 0 ? keep : [rng.int(n)];
  };
  const layers = graph.layers.map((layer, i) => ({
    index: i,
    dropped: false,
    keptGroups: hasPrunableHeads(layer.attention) ? subset(layer.attention.kvHeads) : Array.from({ length: layer.attention.kvHeads }, (_, g) => g),
    keptNeurons: subset(layer.ffn.width),
  }));
  if (options.drop && layers.length > 1) {
    const l = rng.int(layers.length);
    layers[l] = { index: l, dropped: true, keptGroups: [], keptNeurons: [] };
  }
  return { layers };
}

export function relativeError(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
}
