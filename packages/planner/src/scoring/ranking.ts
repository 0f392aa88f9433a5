/**
 * Unit rankings (importance order per layer) and the plan a set of per-layer kept counts makes:
 * a layer keeping k units keeps the k most important ones.
 */
import { hasPrunableHeads, type LayerPlan, type ModuleGraph, type PrunePlan } from '@zerolm/core';
import { DEFAULT_IMPORTANCE, getImportance, type UnitImportance } from './importance';
import type { UnitKind } from './unit-norms';

/** Per-layer unit orders, most important first (JSON-friendly, part of a plan result). */
export interface UnitRanking {
  importance: string;
  /** Per layer: kv-group indices, most important first. */
  groups: number[][];
  /** Per layer: FFN neuron indices, most important first. */
  neurons: number[][];
}

/** How much of one layer a candidate keeps. */
export interface LayerCounts {
  /** Kept key-value groups (each with its heads / kvHeads query heads). */
  groups: number;
  /** Kept FFN neurons. */
  neurons: number;
  /** The whole layer is removed. */
  dropped: boolean;
}

export interface RankOptions {
  /** Importance rule name or object (default `magnitude`). */
  importance?: string | UnitImportance;
  /** Seed for random rules (default 0). */
  seed?: number;
}

function orderOf(scores: Float64Array, units: number, what: string): number[] {
  if (scores.length !== units) throw new Error(`importance returned ${scores.length} scores for ${units} ${what}`);
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i]!)) throw new Error(`importance of ${what} ${i} is ${scores[i]}: scores must be finite`);
  }
  // Ties keep the original order, so equal units are cut from the end.
  return Array.from({ length: units }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/** Ranks every layer's kv groups and FFN neurons by an importance rule. */
export function rankUnits(graph: ModuleGraph, options: RankOptions = {}): UnitRanking {
  const rule = typeof options.importance === 'object' ? options.importance : getImportance(options.importance ?? DEFAULT_IMPORTANCE);
  const seed = options.seed ?? 0;
  const rank = (kind: UnitKind) =>
    graph.layers.map((layer) => {
      const units = kind === 'ffn' ? layer.ffn.width : layer.attention.kvHeads;
      if (kind === 'heads' && !hasPrunableHeads(layer.attention)) return Array.from({ length: units }, (_, i) => i);
      return orderOf(rule.importance(layer, kind, { seed }), units, `layer ${layer.index} ${kind === 'ffn' ? 'neurons' : 'key-value groups'}`);
    });
  return { importance: rule.name, groups: rank('heads'), neurons: rank('ffn') };
}

/** The `count` most important of `order`, ascending (the form a `LayerPlan` wants). */
export function topUnits(order: readonly number[], count: number): number[] {
  return order.slice(0, count).sort((a, b) => a - b);
}

/** The plan that keeps, in each layer, its `counts` most important units. */
export function planFromCounts(ranking: UnitRanking, counts: readonly LayerCounts[]): PrunePlan {
  if (counts.length !== ranking.groups.length) {
    throw new Error(`counts cover ${counts.length} layers, the ranking ${ranking.groups.length}`);
  }
  const layers: LayerPlan[] = counts.map((c, i) => ({
    index: i,
    dropped: c.dropped,
    keptGroups: c.dropped ? [] : topUnits(ranking.groups[i]!, c.groups),
    keptNeurons: c.dropped ? [] : topUnits(ranking.neurons[i]!, c.neurons),
  }));
  return { layers };
}
