/**
 * Unit rankings (importance order per layer) and the plan a set of per-layer kept counts makes:
 * a layer keeping k units keeps the k most important ones.
 */
import type { HfModel } from '@zerolm/adapters';
import { hasPrunableHeads, type Layer, type LayerPlan, type ModuleGraph, type PrunePlan } from '@zerolm/core';
import { calibrate, type CalibrationOptions } from '../calibration/calibrate';
import type { Device } from '@zerolm/runtime';
import { performance } from 'perf_hooks';
import {
  ATTENTION_IMPORTANCE_METHODS,
  DEFAULT_IMPORTANCE,
  FFN_IMPORTANCE_METHODS,
  getImportance,
  listImportances,
  needsModel,
  WEIGHT_FALLBACK_IMPORTANCE,
  type AttentionImportanceMethod,
  type FfnImportanceMethod,
  type ImportanceContext,
  type ImportanceDetails,
  type UnitImportance,
} from './importance';
import './self-generated';
import './wanda-sp';
import './flap';
import type { UnitKind } from './unit-norms';

/** Per-layer unit orders, most important first (JSON-friendly, part of a plan result). */
export interface UnitRanking {
  importance: string;
  /** Per layer: kv-group indices, most important first. */
  groups: number[][];
  /** Per layer: FFN neuron indices, most important first. */
  neurons: number[][];
  /**
   * The rule's scores per layer, in unit index order, when they compare across layers (the rule
   * says so: `flap`); `search: 'global'` ranks the whole model by them.
   */
  scores?: { groups: number[][]; neurons: number[][] };
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
  /** Importance rule name or object (default `self-generated`; `magnitude` without a model folder). */
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

function resolveRule(importance: string | UnitImportance | undefined): UnitImportance {
  return typeof importance === 'object' ? importance : getImportance(importance ?? DEFAULT_IMPORTANCE);
}

function modelRequired(rule: UnitImportance, graph: ModuleGraph): Error {
  const weightRules = listImportances().filter((r) => !needsModel(r)).map((r) => r.name);
  return new Error(
    `importance "${rule.name}" runs the model, so it needs the model folder, not just the module graph of ${graph.name} ` +
      `(use prune(modelDir), or planPrune(graph, { model: loadHfModel(dir) })); rules that read only the weights: ${weightRules.join(', ')}`,
  );
}

function rankWith(graph: ModuleGraph, name: string, scoresOf: (layer: Layer, kind: UnitKind) => Float64Array): UnitRanking {
  const rank = (kind: UnitKind) =>
    graph.layers.map((layer) => {
      const units = kind === 'ffn' ? layer.ffn.width : layer.attention.kvHeads;
      if (kind === 'heads' && !hasPrunableHeads(layer.attention)) return Array.from({ length: units }, (_, i) => i);
      return orderOf(scoresOf(layer, kind), units, `layer ${layer.index} ${kind === 'ffn' ? 'neurons' : 'key-value groups'}`);
    });
  return { importance: name, groups: rank('heads'), neurons: rank('ffn') };
}

/**
 * Ranks every layer's kv groups and FFN neurons by a rule that reads only the weights. Without
 * a named rule the default needs the model, so `magnitude` ranks; naming a rule that runs the
 * model is an error here (use `prepareRanking` with the model).
 */
export function rankUnits(graph: ModuleGraph, options: RankOptions = {}): UnitRanking {
  let rule = resolveRule(options.importance);
  if (needsModel(rule)) {
    if (options.importance !== undefined) throw modelRequired(rule, graph);
    rule = getImportance(WEIGHT_FALLBACK_IMPORTANCE);
  }
  const seed = options.seed ?? 0;
  return rankWith(graph, rule.name, (layer, kind) => rule.importance!(layer, kind, { seed }));
}

export interface PrepareRankingOptions extends RankOptions {
  /** The model folder `graph` was loaded from (`loadHfModel(dir).graph`): model rules run it. */
  model?: HfModel;
  /** Where model rules run onnxruntime (default auto). */
  device?: Device;
  /** Calibration settings for model rules (S, T; the seed defaults to `seed`). */
  calibration?: Omit<CalibrationOptions, 'device' | 'onProgress'>;
  /** `self-generated`'s FFN and attention methods (defaults `obs`, `auto`). */
  ffnImportance?: FfnImportanceMethod;
  attentionImportance?: AttentionImportanceMethod;
  onProgress?: ImportanceContext['onProgress'];
}

/**
 * Ranks the units with any rule: weight rules as `rankUnits`, model rules by running the model
 * (`prepare`). Without a model folder and without a named rule, `magnitude` ranks and
 * `details.fallback` says why; a named model rule without a model folder is an error.
 */
export async function prepareRanking(
  graph: ModuleGraph,
  options: PrepareRankingOptions = {},
): Promise<{ ranking: UnitRanking; details?: ImportanceDetails; calibrationMs: number }> {
  const rule = resolveRule(options.importance);
  const seed = options.seed ?? 0;
  if (!needsModel(rule)) return { ranking: rankWith(graph, rule.name, (layer, kind) => rule.importance!(layer, kind, { seed })), calibrationMs: 0 };
  const model = options.model;
  if (!model) {
    if (options.importance !== undefined) throw modelRequired(rule, graph);
    return {
      ranking: rankUnits(graph, { seed }),
      calibrationMs: 0,
      details: { fallback: `the default importance "${rule.name}" runs the model and ${graph.name} came without a model folder: ranked by ${WEIGHT_FALLBACK_IMPORTANCE}` },
    };
  }
  if (model.graph.layers.length !== graph.layers.length) {
    throw new Error(`the model folder ${model.dir} has ${model.graph.layers.length} layers, the graph to plan ${graph.layers.length}`);
  }
  const device = options.device ?? 'auto';
  if (options.ffnImportance !== undefined && !FFN_IMPORTANCE_METHODS.includes(options.ffnImportance)) {
    throw new Error(`unknown FFN importance "${options.ffnImportance}" (known: ${FFN_IMPORTANCE_METHODS.join(', ')})`);
  }
  if (options.attentionImportance !== undefined && !ATTENTION_IMPORTANCE_METHODS.includes(options.attentionImportance)) {
    throw new Error(`unknown attention importance "${options.attentionImportance}" (known: ${ATTENTION_IMPORTANCE_METHODS.join(', ')})`);
  }
  const calibrationOptions: CalibrationOptions = {
    ...options.calibration,
    seed: options.calibration?.seed ?? seed,
    device,
    ...(options.onProgress ? { onProgress: (done: number, total: number) => options.onProgress!(done, total, 'calibration') } : {}),
  };
  // Time spent waiting for the calibration (sequences and statistics), apart from the rule's own work.
  let calibrationMs = 0;
  const prepared = await rule.prepare!({
    graph,
    model,
    seed,
    device,
    ...(options.ffnImportance ? { ffnImportance: options.ffnImportance } : {}),
    ...(options.attentionImportance ? { attentionImportance: options.attentionImportance } : {}),
    calibration: async () => {
      const waited = performance.now();
      try {
        return await calibrate(model, calibrationOptions);
      } finally {
        calibrationMs += performance.now() - waited;
      }
    },
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const ranking = rankWith(graph, rule.name, (layer, kind) => prepared.scores(layer, kind));
  if (prepared.comparable) {
    const all = (kind: UnitKind) => graph.layers.map((layer) => Array.from(prepared.scores(layer, kind)));
    ranking.scores = { groups: all('heads'), neurons: all('ffn') };
  }
  return { ranking, calibrationMs, ...(prepared.details ? { details: prepared.details } : {}) };
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
