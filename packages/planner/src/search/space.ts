/**
 * The search space: per layer, how many kv groups and FFN neurons to keep (and whether to keep
 * the layer at all), as a genome of small integers; the cost and score of a genome; and the
 * single steps (one kv group, `roundTo` neurons, a whole layer) that greedy descent, repair and
 * refill move by.
 *
 * Genome layout (Int32Array of 3L): [group level of each layer, neuron level of each layer,
 * alive flag of each layer]. A level indexes the layer's allowed kept counts (ascending): groups
 * 1..kvHeads, neurons roundTo, 2 roundTo, ... and always the full width. A dropped layer keeps
 * levels 0 (one canonical genome per sub-network).
 */
import { hasPrunableHeads, type ModuleGraph, type ScoreVariant } from '@zerolm/core';
import type { CapacityTable } from '../scoring/capacity-table';
import type { AllowedCounts } from '../scoring/onnx-scorer';
import type { LayerCounts } from '../scoring/ranking';
import { layerCost, type LayerCost } from './budget';

const { log1p } = Math;

export type Granularity = 'heads' | 'ffn' | 'layers';

export const GRANULARITIES: readonly Granularity[] = ['heads', 'ffn', 'layers'];

export const DEFAULT_GRANULARITY: readonly Granularity[] = ['heads', 'ffn'];

export const DEFAULT_ROUND_TO = 8;

/** Parses `heads,ffn` or an array into a checked granularity list. */
export function parseGranularity(value: string | readonly string[] | undefined): Granularity[] {
  if (value === undefined) return [...DEFAULT_GRANULARITY];
  const items = (typeof value === 'string' ? value.split(',') : [...value]).map((s) => String(s).trim()).filter((s) => s !== '');
  if (items.length === 0) throw new Error(`granularity is empty (choose from ${GRANULARITIES.join(', ')})`);
  for (const item of items) {
    if (!(GRANULARITIES as readonly string[]).includes(item)) {
      throw new Error(`unknown granularity "${item}" (known: ${GRANULARITIES.join(', ')})`);
    }
  }
  return GRANULARITIES.filter((g) => items.includes(g));
}

/** The kept counts each layer may take under a granularity. */
export function allowedCounts(graph: ModuleGraph, granularity: readonly Granularity[], roundTo: number): AllowedCounts[] {
  if (!Number.isInteger(roundTo) || roundTo < 1) throw new Error(`roundTo must be a whole number >= 1 (got ${roundTo})`);
  return graph.layers.map((layer) => {
    const kv = layer.attention.kvHeads;
    const width = layer.ffn.width;
    const groups = granularity.includes('heads') && hasPrunableHeads(layer.attention) ? Array.from({ length: kv }, (_, i) => i + 1) : [kv];
    let neurons = [width];
    if (granularity.includes('ffn')) {
      neurons = [];
      for (let n = roundTo; n < width; n += roundTo) neurons.push(n);
      neurons.push(width);
    }
    return { groups, neurons };
  });
}

export interface SpaceOptions {
  alpha: number;
  variant: ScoreVariant;
  granularity: readonly Granularity[];
  roundTo: number;
  seqLen: number;
}

/** Budgets in absolute units; Infinity where none is set. */
export interface Budget {
  params: number;
  flops: number;
  /**
   * Treat the budget as a target size: refilling adds the best steps that still fit even when
   * they lower the score (a mean-like measure such as msv can rise as weak units go, which would
   * otherwise leave much of the budget unused). Only meaningful with a finite budget.
   */
  fill?: boolean;
}

/** A genome with its totals, updated step by step. */
export interface State {
  genome: Int32Array;
  params: number;
  flops: number;
  score: number;
  alive: number;
}

/** One move: `kind` 0 = a kv group, 1 = a neuron level, 2 = the whole layer; `up` adds. */
export interface Step {
  layer: number;
  kind: 0 | 1 | 2;
  up: boolean;
  dScore: number;
  dParams: number;
  dFlops: number;
}

export class SearchSpace {
  readonly layers: number;
  readonly allowed: AllowedCounts[];
  readonly costs: LayerCost[];
  readonly canDrop: boolean;
  readonly fullParams: number;
  readonly fullFlops: number;
  private readonly attentionTerms: Float64Array[];
  private readonly ffnTerms: Float64Array[];

  constructor(
    graph: ModuleGraph,
    private readonly table: CapacityTable,
    readonly options: SpaceOptions,
  ) {
    this.layers = graph.layers.length;
    this.allowed = allowedCounts(graph, options.granularity, options.roundTo);
    this.costs = graph.layers.map((layer) => layerCost(layer, options.seqLen));
    this.canDrop = options.granularity.includes('layers');
    // Terms are filled on first use: with SVD-based measures each one costs singular values.
    this.attentionTerms = this.allowed.map((a) => new Float64Array(a.groups.length).fill(NaN));
    this.ffnTerms = this.allowed.map((a) => new Float64Array(a.neurons.length).fill(NaN));
    const full = this.fullGenome();
    this.fullParams = this.params(full);
    this.fullFlops = this.flops(full);
  }

  private transform(capacity: number): number {
    return this.options.variant === 'log' ? log1p(capacity) : capacity;
  }

  /** alpha * X(A_l) at a group level (X = identity, or log(1 + .) for the log variant). */
  attentionTerm(layer: number, level: number): number {
    const terms = this.attentionTerms[layer]!;
    let t = terms[level]!;
    if (Number.isNaN(t)) {
      t = terms[level] = this.options.alpha * this.transform(this.table.attention(layer, this.allowed[layer]!.groups[level]!));
    }
    return t;
  }

  /** (1 - alpha) * X(F_l) at a neuron level. */
  ffnTerm(layer: number, level: number): number {
    const terms = this.ffnTerms[layer]!;
    let t = terms[level]!;
    if (Number.isNaN(t)) {
      t = terms[level] = (1 - this.options.alpha) * this.transform(this.table.ffn(layer, this.allowed[layer]!.neurons[level]!));
    }
    return t;
  }

  groupLevels(layer: number): number {
    return this.allowed[layer]!.groups.length;
  }

  neuronLevels(layer: number): number {
    return this.allowed[layer]!.neurons.length;
  }

  fullGenome(): Int32Array {
    const g = new Int32Array(3 * this.layers);
    for (let l = 0; l < this.layers; l++) {
      g[l] = this.groupLevels(l) - 1;
      g[this.layers + l] = this.neuronLevels(l) - 1;
      g[2 * this.layers + l] = 1;
    }
    return g;
  }

  /** Every layer alive at its smallest allowed counts. */
  minimumGenome(): Int32Array {
    const g = new Int32Array(3 * this.layers);
    for (let l = 0; l < this.layers; l++) g[2 * this.layers + l] = 1;
    return g;
  }

  isAlive(genome: Int32Array, layer: number): boolean {
    return genome[2 * this.layers + layer] === 1;
  }

  layerParams(layer: number, groupLevel: number, neuronLevel: number): number {
    const c = this.costs[layer]!;
    const a = this.allowed[layer]!;
    return c.attentionParams.fixed + c.attentionParams.perUnit * a.groups[groupLevel]! + c.ffnParams.fixed + c.ffnParams.perUnit * a.neurons[neuronLevel]!;
  }

  layerFlops(layer: number, groupLevel: number, neuronLevel: number): number {
    const c = this.costs[layer]!;
    const a = this.allowed[layer]!;
    return c.attentionFlops.fixed + c.attentionFlops.perUnit * a.groups[groupLevel]! + c.ffnFlops.fixed + c.ffnFlops.perUnit * a.neurons[neuronLevel]!;
  }

  layerTerm(layer: number, groupLevel: number, neuronLevel: number): number {
    return this.attentionTerm(layer, groupLevel) + this.ffnTerm(layer, neuronLevel);
  }

  /** Sum of `term(layer, groupLevel, neuronLevel)` over the layers the genome keeps. */
  private sumOverAlive(genome: Int32Array, term: (layer: number, groupLevel: number, neuronLevel: number) => number): number {
    let sum = 0;
    for (let l = 0; l < this.layers; l++) if (this.isAlive(genome, l)) sum += term.call(this, l, genome[l]!, genome[this.layers + l]!);
    return sum;
  }

  params(genome: Int32Array): number {
    return this.sumOverAlive(genome, this.layerParams);
  }

  flops(genome: Int32Array): number {
    return this.sumOverAlive(genome, this.layerFlops);
  }

  /** The ZeroLM score of the candidate: sum over kept layers of alpha X(A_l) + (1 - alpha) X(F_l). */
  score(genome: Int32Array): number {
    return this.sumOverAlive(genome, this.layerTerm);
  }

  state(genome: Int32Array): State {
    let alive = 0;
    for (let l = 0; l < this.layers; l++) if (this.isAlive(genome, l)) alive++;
    return { genome, params: this.params(genome), flops: this.flops(genome), score: this.score(genome), alive };
  }

  counts(genome: Int32Array): LayerCounts[] {
    return this.allowed.map((a, l) => {
      const dropped = !this.isAlive(genome, l);
      return { groups: dropped ? 0 : a.groups[genome[l]!]!, neurons: dropped ? 0 : a.neurons[genome[this.layers + l]!]!, dropped };
    });
  }

  key(genome: Int32Array): string {
    return genome.join(',');
  }

  /**
   * The step of `kind` in `layer` (down, or `up`), or undefined when it is not allowed. Hot
   * loops pass `out` to reuse one object instead of allocating one per candidate.
   */
  step(state: State, layer: number, kind: 0 | 1 | 2, up: boolean, out?: Step): Step | undefined {
    const L = this.layers;
    const g = state.genome;
    const gl = g[layer]!;
    const nl = g[L + layer]!;
    const alive = g[2 * L + layer] === 1;
    let dScore: number;
    let dParams: number;
    let dFlops: number;
    if (kind === 2) {
      if (!this.canDrop) return undefined;
      if (up) {
        if (alive) return undefined;
        dScore = this.layerTerm(layer, 0, 0);
        dParams = this.layerParams(layer, 0, 0);
        dFlops = this.layerFlops(layer, 0, 0);
      } else {
        if (!alive || state.alive <= 1) return undefined;
        dScore = -this.layerTerm(layer, gl, nl);
        dParams = -this.layerParams(layer, gl, nl);
        dFlops = -this.layerFlops(layer, gl, nl);
      }
    } else {
      if (!alive) return undefined;
      const levels = kind === 0 ? this.groupLevels(layer) : this.neuronLevels(layer);
      const from = kind === 0 ? gl : nl;
      const to = up ? from + 1 : from - 1;
      if (to < 0 || to >= levels) return undefined;
      const c = this.costs[layer]!;
      if (kind === 0) {
        const units = this.allowed[layer]!.groups[to]! - this.allowed[layer]!.groups[from]!;
        dScore = this.attentionTerm(layer, to) - this.attentionTerm(layer, from);
        dParams = units * c.attentionParams.perUnit;
        dFlops = units * c.attentionFlops.perUnit;
      } else {
        const units = this.allowed[layer]!.neurons[to]! - this.allowed[layer]!.neurons[from]!;
        dScore = this.ffnTerm(layer, to) - this.ffnTerm(layer, from);
        dParams = units * c.ffnParams.perUnit;
        dFlops = units * c.ffnFlops.perUnit;
      }
    }
    const step = out ?? ({} as Step);
    step.layer = layer;
    step.kind = kind;
    step.up = up;
    step.dScore = dScore;
    step.dParams = dParams;
    step.dFlops = dFlops;
    return step;
  }

  apply(state: State, step: Step): void {
    const L = this.layers;
    const g = state.genome;
    if (step.kind === 2) {
      g[L * 2 + step.layer] = step.up ? 1 : 0;
      g[step.layer] = 0;
      g[L + step.layer] = 0;
      state.alive += step.up ? 1 : -1;
    } else {
      g[step.kind * L + step.layer] += step.up ? 1 : -1;
    }
    state.params += step.dParams;
    state.flops += step.dFlops;
    state.score += step.dScore;
  }
}

export function fits(state: { params: number; flops: number }, budget: Budget): boolean {
  // Totals are sums of integers, exact in float64.
  return state.params <= budget.params && state.flops <= budget.flops;
}
