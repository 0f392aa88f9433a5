/**
 * Chooses how the planner's capacity table is filled: onnxruntime (CUDA, else CPU) scoring
 * batches of masks for `msv` and `nuclear-bound`, TypeScript otherwise, and says which provider
 * scored and why.
 */
import { resolveMeasure, type CapacityMeasure, type ModuleGraph } from '@zerolm/core';
import { performance } from 'perf_hooks';
import type { Device, Provider } from '@zerolm/runtime';
import { gatherTable, sumOfSquaresTable, type CapacityTable } from './capacity-table';
import { maskLayout } from './masks';
import { fillTable, ONNX_SCORED_MEASURES, openOnnxMaskScorer, type AllowedCounts } from './onnx-scorer';
import type { UnitRanking } from './ranking';

export type ScoringBackend = 'auto' | 'onnxruntime' | 'typescript';

export const SCORING_BACKENDS: readonly ScoringBackend[] = ['auto', 'onnxruntime', 'typescript'];

export interface ScoringSetup {
  table: CapacityTable;
  /** Who scored: onnxruntime's `cuda` or `cpu` provider, or `typescript`. */
  provider: Provider | 'typescript';
  /** Why the provider is not CUDA (CPU fallback) or not onnxruntime at all. */
  reason?: string;
  /** Masked sub-networks onnxruntime scored to fill the table (0 for the TypeScript tables). */
  rows: number;
  /** Time to build (and, for onnxruntime, fill) the table. */
  ms: number;
}

export interface ScoringOptions {
  measure?: CapacityMeasure | string;
  alpha: number;
  backend?: ScoringBackend;
  device?: Device;
  /** Mask rows per onnxruntime call (default 64). */
  batchSize?: number;
}

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

/** Builds the capacity table for `ranking` over the kept counts `allowed` each layer may take. */
export async function openScoring(
  graph: ModuleGraph,
  ranking: UnitRanking,
  allowed: readonly AllowedCounts[],
  options: ScoringOptions,
): Promise<ScoringSetup> {
  const started = performance.now();
  const backend = options.backend ?? 'auto';
  if (!SCORING_BACKENDS.includes(backend)) {
    throw new Error(`unknown scoring backend "${backend}" (known: ${SCORING_BACKENDS.join(', ')})`);
  }
  const measure = resolveMeasure(options.measure);
  const done = (setup: Omit<ScoringSetup, 'ms'>): ScoringSetup => ({ ...setup, ms: performance.now() - started });
  if (!ONNX_SCORED_MEASURES.includes(measure.name)) {
    const reason = `measure "${measure.name}" needs singular values, which no ONNX operator computes`;
    if (backend === 'onnxruntime') throw new Error(`cannot score on onnxruntime: ${reason} (use the typescript or auto backend)`);
    return done({ table: gatherTable(graph, ranking, measure), provider: 'typescript', reason, rows: 0 });
  }
  if (backend === 'typescript') {
    return done({ table: sumOfSquaresTable(graph, ranking, measure), provider: 'typescript', reason: 'typescript backend requested', rows: 0 });
  }
  // Outside the fallback: NaN weights are the model's problem, not onnxruntime's.
  const layout = maskLayout(graph);
  let scorer: Awaited<ReturnType<typeof openOnnxMaskScorer>>;
  try {
    scorer = await openOnnxMaskScorer(layout, { alpha: options.alpha, measure, device: options.device ?? 'auto' });
  } catch (error) {
    if (backend === 'onnxruntime' || options.device === 'cuda') throw error;
    return done({ table: sumOfSquaresTable(graph, ranking, measure), provider: 'typescript', reason: `onnxruntime could not start: ${message(error)}`, rows: 0 });
  }
  try {
    const { table, rows } = await fillTable(scorer, ranking, allowed, options.batchSize === undefined ? {} : { batchSize: options.batchSize });
    return done({ table, provider: scorer.provider, ...(scorer.fallbackReason === undefined ? {} : { reason: `CUDA unavailable: ${scorer.fallbackReason}` }), rows });
  } finally {
    await scorer.close();
  }
}
