/**
 * Data-free importance of structured units: a small registry of rules, each mapping a layer's
 * units of one kind to one score per unit (higher = keep first). A candidate sub-network keeps
 * the top-k units of each layer by this score, so the rule decides *which* units survive and the
 * search decides *how many*.
 *
 * A new rule is one `registerImportance` call; `rankUnits` (ranking.ts) is the only consumer.
 */
import { createRegistry, Rng, type Layer } from '@zerolm/core';
import { unitSliceNorms, type UnitKind } from './unit-norms';

export interface ImportanceOptions {
  /** Seed for rules that draw random numbers. */
  seed: number;
}

export interface UnitImportance {
  readonly name: string;
  /** One line: the rule, for `--help` and docs. */
  readonly description: string;
  /**
   * One score per unit of `kind` in `layer` (kv groups for `heads`, neurons for `ffn`); higher
   * means more important. Must be finite.
   */
  importance(layer: Layer, kind: UnitKind, options: ImportanceOptions): Float64Array;
}

/** The rule used when none is named. */
export const DEFAULT_IMPORTANCE = 'magnitude';

const rules = createRegistry<UnitImportance>('importance');

export const registerImportance = rules.register;
export const getImportance = rules.get;
export const listImportances = rules.list;

/**
 * `magnitude`: for unit u, sum over the matrices m it cuts of ||slice_m(u)||^2 / mean_u' ||slice_m(u')||^2.
 * Dividing by each matrix's mean unit value keeps one matrix (a wide up projection, or a v with
 * a larger init) from deciding alone. A matrix whose slices are all zero adds nothing. A unit
 * whose slices are all zero scores exactly 0, the lowest possible value.
 */
export const magnitudeImportance: UnitImportance = {
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
export const randomImportance: UnitImportance = {
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
