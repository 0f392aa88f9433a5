import { countParams, type ModuleGraph, type ParamCounts, type TaskHead } from '../module-graph';
import { graphCapacity, type CapacityOptions, type MatrixCapacity } from './capacity';
import { combine, scoreComponents, type ScoreVariant } from './score';

export interface LayerScoreReport {
  index: number;
  attention: { kind: string; capacity: number; heads: number; kvHeads: number; headDim: number; matrices: MatrixCapacity[] };
  ffn: { capacity: number; width: number; activation: string; matrices: MatrixCapacity[] };
}

/** Everything `zerolm score` prints, for one module graph. */
export interface ScoreReport {
  model: string;
  family: string;
  measure: string;
  alpha: number;
  variant: ScoreVariant;
  init: CapacityOptions['init'];
  score: number;
  /** Summed capacities (linear) or summed log(1 + capacity) (log variant). */
  attention: number;
  ffn: number;
  params: ParamCounts;
  layers: LayerScoreReport[];
  /** Task heads after the last layer (not scored, never pruned), when the graph lists them. */
  heads?: readonly TaskHead[];
}

export function scoreReport(
  graph: ModuleGraph,
  options: CapacityOptions & { alpha?: number; variant?: ScoreVariant } = {},
): ScoreReport {
  const alpha = options.alpha ?? 0.5;
  const variant = options.variant ?? 'linear';
  const capacity = graphCapacity(graph, options);
  const components = scoreComponents(
    capacity.layers.map((l) => ({ attention: l.attention.capacity, ffn: l.ffn.capacity })),
    variant,
  );
  return {
    model: graph.name,
    family: graph.family,
    measure: capacity.measure,
    alpha,
    variant,
    init: capacity.init,
    score: combine(components, alpha),
    attention: components.attention,
    ffn: components.ffn,
    params: countParams(graph),
    layers: graph.layers.map((layer, i) => {
      const c = capacity.layers[i]!;
      return {
        index: layer.index,
        attention: {
          kind: layer.attention.kind,
          capacity: c.attention.capacity,
          heads: layer.attention.heads,
          kvHeads: layer.attention.kvHeads,
          headDim: layer.attention.headDim,
          matrices: c.attention.matrices,
        },
        ffn: { capacity: c.ffn.capacity, width: layer.ffn.width, activation: layer.ffn.activation, matrices: c.ffn.matrices },
      };
    }),
    ...(graph.heads ? { heads: graph.heads } : {}),
  };
}
