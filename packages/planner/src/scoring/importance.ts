/**
 * Unit importance: a small registry of rules, each mapping a layer's units of one kind to one
 * score per unit (higher = keep first). A candidate sub-network keeps the top-k units of each
 * layer by this score, so the rule decides *which* units survive and the search decides *how
 * many*.
 *
 * Two kinds of rule:
 * - weight rules (`importance(layer, kind, options)`) read only the module graph, so they work on
 *   spec graphs too (`magnitude`, `random`);
 * - model rules (`prepare(context)`) run the model folder itself (`self-generated`, the default):
 *   they receive the loaded `HfModel` and its calibration, and return the scores of every layer.
 *   Planning a spec graph with a model rule fails with a clear error; planning it without naming
 *   a rule falls back to `magnitude` (the result says so).
 *
 * A new rule is one `registerImportance` call; `rankUnits` / `prepareRanking` (ranking.ts) are
 * the consumers.
 */
import type { HfModel } from '@zerolm/adapters';
import { createRegistry, Rng, type Layer, type ModuleGraph } from '@zerolm/core';
import type { Calibration, CalibrationSummary } from '../calibration/calibrate';
import type { Device } from '@zerolm/runtime';
import { unitSliceNorms, type UnitKind } from './unit-norms';

export interface ImportanceOptions {
  /** Seed for rules that draw random numbers. */
  seed: number;
}

/** How `self-generated` ranks FFN neurons: see `scoring/self-generated.ts`. */
export type FfnImportanceMethod = 'obs' | 'chunked-obs' | 'energy';
export const FFN_IMPORTANCE_METHODS: readonly FfnImportanceMethod[] = ['obs', 'chunked-obs', 'energy'];
/**
 * How `self-generated` ranks attention units: `ablation` by the model's output change (KL of the
 * next-token predictions, an encoder's hidden states), `block-obs` on `o` alone, `auto` the first
 * where running the model once per candidate fits, else the second.
 */
export type AttentionImportanceMethod = 'auto' | 'ablation' | 'block-obs';
export const ATTENTION_IMPORTANCE_METHODS: readonly AttentionImportanceMethod[] = ['auto', 'ablation', 'block-obs'];

/** How one layer's FFN neurons were ranked, and why when not by the exact greedy OBS (the default). */
export interface FfnRanking {
  method: 'obs' | 'chunked-obs' | 'energy';
  /** Neurons removed per OBS step. */
  chunk?: number;
  steps?: number;
  reason?: string;
}

/** What a model rule gets: the model, its calibration (computed once, on first call), and where to run. */
export interface ImportanceContext {
  readonly graph: ModuleGraph;
  readonly model: HfModel;
  readonly seed: number;
  readonly device: Device;
  /** `self-generated`'s FFN and attention methods (defaults `obs`, `auto`). */
  readonly ffnImportance?: FfnImportanceMethod;
  readonly attentionImportance?: AttentionImportanceMethod;
  calibration(): Promise<Calibration>;
  onProgress?: (done: number, total: number, phase: 'calibration' | 'importance') => void;
}

/** How a model rule ranked the units (recorded in the plan result and plan.json). */
export interface ImportanceDetails {
  calibration?: CalibrationSummary;
  /**
   * How attention units were ranked: by the output change (`kl` of the next-token predictions,
   * `hidden` the squared change of an encoder's final hidden states), or by `block-obs` with the reason.
   */
  attention?: { method: 'kl' | 'hidden' | 'block-obs'; reason?: string; passes?: number };
  /** How each layer's FFN neurons were ranked. */
  ffn?: FfnRanking[];
  /** Where the OBS algebra ran (onnxruntime provider, and why not CUDA), when it ran there. */
  algebra?: { provider: string; reason?: string };
  /** The rule's own time, in milliseconds. */
  timings?: { ffnMs: number; attentionMs: number };
  /** Why another rule than the default ranked the units. */
  fallback?: string;
}

/** Scores a model rule prepared for every layer. */
export interface PreparedImportance {
  /** One score per unit of `kind` in `layer` (a layer of `context.graph`), as `importance` returns. */
  scores(layer: Layer, kind: UnitKind): Float64Array;
  /**
   * The scores compare across layers and between heads and neurons (not only within a layer), so
   * `search: 'global'` may keep the best units of the whole model by them.
   */
  comparable?: boolean;
  details?: ImportanceDetails;
}

export interface UnitImportance {
  readonly name: string;
  /** One line: the rule, for `--help` and docs. */
  readonly description: string;
  /**
   * Weight rules: one score per unit of `kind` in `layer` (kv groups for `heads`, neurons for
   * `ffn`); higher means more important. Must be finite.
   */
  importance?(layer: Layer, kind: UnitKind, options: ImportanceOptions): Float64Array;
  /** Model rules: run the model (see `ImportanceContext`) and return every layer's scores. */
  prepare?(context: ImportanceContext): Promise<PreparedImportance>;
}

/** A rule that reads only the module graph. */
export interface WeightImportance extends UnitImportance {
  importance(layer: Layer, kind: UnitKind, options: ImportanceOptions): Float64Array;
}

/** The rule used when none is named (on a spec graph, without a model folder: `magnitude`). */
export const DEFAULT_IMPORTANCE = 'self-generated';
/** The rule planning falls back to when the default needs a model folder and there is none. */
export const WEIGHT_FALLBACK_IMPORTANCE = 'magnitude';

const rules = createRegistry<UnitImportance>('importance');

export function registerImportance(rule: UnitImportance): void {
  if (!rule.importance && !rule.prepare) throw new Error(`importance "${rule.name}" needs an importance() or a prepare() function`);
  rules.register(rule);
}
export const getImportance = rules.get;
export const listImportances = rules.list;

/** Whether a rule runs the model (and so needs a model folder, not just a module graph). */
export function needsModel(rule: UnitImportance): boolean {
  return rule.importance === undefined;
}

/**
 * `magnitude`: for unit u, sum over the matrices m it cuts of ||slice_m(u)||^2 / mean_u' ||slice_m(u')||^2.
 * Dividing by each matrix's mean unit value keeps one matrix (a wide up projection, or a v with
 * a larger init) from deciding alone. A matrix whose slices are all zero adds nothing. A unit
 * whose slices are all zero scores exactly 0, the lowest possible value.
 */
export const magnitudeImportance: WeightImportance = {
  name: 'magnitude',
  description: 'sum over the unit\'s coupled slices of squared norms, each divided by its matrix\'s mean over units',
  importance(layer, kind) {
    const slices = unitSliceNorms(layer, kind);
    const scores = new Float64Array(slices.units);
    for (const norms of slices.norms) {
      let mean = 0;
      for (const v of norms) mean += v;
      mean /= norms.length;
      if (!(mean > 0)) continue;
      for (let u = 0; u < norms.length; u++) scores[u] += norms[u]! / mean;
    }
    return scores;
  },
};

/**
 * `random`: uniform scores from a stream seeded by the seed, the layer and the unit kind, so a
 * seed always picks the same units (a baseline for better rules).
 */
export const randomImportance: WeightImportance = {
  name: 'random',
  description: 'uniform random scores, seeded by --seed (a baseline)',
  importance(layer, kind, options) {
    const units = kind === 'ffn' ? layer.ffn.width : layer.attention.kvHeads;
    const rng = new Rng(`importance/random/${options.seed}/${layer.index}/${kind}`);
    const scores = new Float64Array(units);
    for (let u = 0; u < units; u++) scores[u] = rng.uniform();
    return scores;
  },
};

registerImportance(magnitudeImportance);
registerImportance(randomImportance);
// `self-generated`, `wanda-sp` and `flap` register themselves in their own files (they need the calibration code).
