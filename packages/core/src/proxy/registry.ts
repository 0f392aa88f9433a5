import type { ModuleGraph } from '../module-graph';
import { countParams } from '../module-graph';
import { createRegistry } from '../registry';
import type { CapacityMeasure } from '../measures/measure';
import { graphCapacity, type InitMode } from './capacity';
import { combine, scoreComponents, type ScoreComponents, type ScoreVariant } from './score';

export interface ProxyOptions {
  /** Capacity measure name or object (default `msv`). */
  measure?: CapacityMeasure | string;
  /** Balance between Attention and FFN, in [0, 1] (default 0.5). */
  alpha?: number;
  init?: InitMode;
  variant?: ScoreVariant;
}

/**
 * A zero-cost proxy: a data-free score of an architecture, higher = predicted better. Every proxy
 * exposes its score as two linear components so that `score(alpha) = alpha * attention + (1 -
 * alpha) * ffn`; a proxy without a balance parameter returns the same value twice.
 */
export interface ZeroCostProxy {
  readonly name: string;
  readonly description: string;
  /** Whether alpha changes the score (alpha strategies only apply to tunable proxies). */
  readonly tunable: boolean;
  components(graph: ModuleGraph, options?: ProxyOptions): ScoreComponents;
}

const proxies = createRegistry<ZeroCostProxy>('proxy');

export const registerProxy = proxies.register;
export const getProxy = proxies.get;
export const listProxies = proxies.list;

export function proxyScore(proxy: ZeroCostProxy | string, graph: ModuleGraph, options: ProxyOptions = {}): number {
  const p = typeof proxy === 'string' ? getProxy(proxy) : proxy;
  return combine(p.components(graph, options), p.tunable ? options.alpha ?? 0.5 : 0);
}

const constant = (value: number): ScoreComponents => ({ attention: value, ffn: value });

registerProxy({
  name: 'zerolm',
  description: 'ZeroLM: sum_l [alpha * A_l + (1 - alpha) * F_l] of module capacities (log variant: log(1 + .) per layer)',
  tunable: true,
  components(graph, options = {}) {
    const capacity = graphCapacity(graph, { measure: options.measure, init: options.init });
    return scoreComponents(
      capacity.layers.map((l) => ({ attention: l.attention.capacity, ffn: l.ffn.capacity })),
      options.variant,
    );
  },
});

registerProxy({
  name: 'params',
  description: 'parameter count of the Attention and FFN modules',
  tunable: false,
  components: (graph) => constant(countParams(graph).modules),
});

registerProxy({
  name: 'depth',
  description: 'number of layers',
  tunable: false,
  components: (graph) => constant(graph.layers.length),
});
