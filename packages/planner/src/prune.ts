/**
 * `prune`: the whole product in one call. Reads a Hugging Face model folder, plans the
 * sub-network to keep under a budget with the ZeroLM proxy (no data), and exports it as a real,
 * smaller model folder that transformers.js loads unchanged, with `plan.json` beside it.
 */
import { loadHfModel, type HfModel, type ModelDtype } from '@zerolm/adapters';
import { graphCapacity, moduleParams, prunedGraph, resolveMeasure, scoreReport, type ModuleGraph, type PrunePlan } from '@zerolm/core';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { calibrate, type CalibrationSummary } from './calibration/calibrate';
import { readCalibrationText } from './calibration/text-sequences';
import { compareModels, latencyBatch, measureLatencies, type CompareOptions, type ComparisonReport } from '@zerolm/compare';
import { exportPrunedModel, exportRefusal, type ExportedOnnxFile, type ExportResult, type WeightOverride } from '@zerolm/export';
import { ModelRunner, positionLimit, type Device } from '@zerolm/runtime';
import {
  checkCorrection,
  correctedGraph,
  correctionSummary,
  DEFAULT_CORRECTION,
  refitOverrides,
  type CorrectionMethod,
  type CorrectionSummary,
} from './correction/refit';
import { biasOverrides } from './correction/bias';
import type { ImportanceDetails } from './scoring/importance';
import { DEFAULT_PRUNE_MEASURE, planPrune, type PlanOptions, type PlanResult } from './search/plan';

export interface PruneOptions extends Omit<PlanOptions, 'latencyOf'> {
  /** Output folder (required unless `planOnly`). */
  out?: string;
  /** Only plan: write nothing. */
  planOnly?: boolean;
  /** Replace a non-empty output folder. */
  force?: boolean;
  /** Timed runs per latency measurement (with `maxLatencyMs`), after 2 warm-up runs. Default 10. */
  latencyRuns?: number;
  /**
   * After planning: `refit` (default) refits the kept rows of every pruned `o` and `down` by least
   * squares on the calibration moments (and their output biases); `bias` keeps the sliced weights
   * and adds the removed channels' mean output to the output bias (FLAP's bias compensation);
   * `none` writes the sliced weights.
   */
  correction?: CorrectionMethod;
  /**
   * The weight files to write (transformers.js dtypes; default every one the source holds),
   * formats the source lacks converted from the pruned fp32 file (see @zerolm/export).
   */
  dtypes?: readonly ModelDtype[];
}

/** One weight file written, as plan.json records it. */
export interface PlanFileOnnx {
  dtype: string;
  file: string;
  bytes: number;
  externalData?: { file: string; bytes: number };
  /** `pruned` from the source's own file, or `converted from fp32` (a format the source lacks). */
  from: string;
  /** Block-quantized weights re-quantized instead of sliced, and why. */
  requantized: { weight: string; reason: string }[];
}

/** What `plan.json` records: enough to audit and reproduce the pruning. */
export interface PlanFile {
  source: string;
  /** The source file the plan was made from (scored, calibrated): fp32 when present, else the most precise. */
  dtype: string;
  family: string;
  measure: string;
  alpha: number;
  variant: string;
  budget: { targetParams?: number; targetFlops?: number; maxLatencyMs?: number; seqLen: number; params?: number; flops?: number };
  search: PlanResult['search'] & { evaluations: number; scoredRows: number };
  provider: string;
  providerReason?: string;
  /** The importance rule and how it ranked (attention path, FFN method), or why it fell back. */
  importance: { rule: string } & Omit<ImportanceDetails, 'calibration'>;
  /** The calibration sequences and statistics, when a rule or the correction ran the model. */
  calibration?: CalibrationSummary;
  correction: CorrectionSummary;
  params: PlanResult['params'];
  flops: PlanResult['flops'];
  /**
   * ZeroLM scores: `before` of the source, `after` of the model written (with the correction's
   * values; `zerolm score` on the output gives it), `searched` of the plan's masked weights, which
   * the search ranked candidates by.
   */
  score: PlanResult['score'];
  layers: PlanFileLayer[];
  latency?: PlanResult['latency'];
  /** Where the time went, in milliseconds (see `PruneTimings`). */
  timings: PruneTimings;
  /** Every weight file written (absent with `planOnly`). */
  files?: PlanFileOnnx[];
}

/**
 * The phases of one `prune`, in milliseconds. `calibrationMs` is what this run spent waiting for
 * the calibration (0 when a cached one was reused); `sequencesMs` and `statisticsMs` split the
 * calibration's own time as it was made. `importanceMs` is the ranking without that wait,
 * `searchMs` the capacity table, greedy, evolution and latency checks, `correctionMs` the refit
 * without calibration, `exportMs` the writing and checking of the folder (0 until written).
 */
export interface PruneTimings {
  calibrationMs: number;
  sequencesMs?: number;
  statisticsMs?: number;
  importanceMs: number;
  searchMs: number;
  correctionMs: number;
  exportMs: number;
  totalMs: number;
}

/** plan.json's record of the files an export wrote. */
export function planFileOnnx(files: readonly ExportedOnnxFile[]): PlanFileOnnx[] {
  return files.map((f) => ({
    dtype: f.dtype,
    file: f.file,
    bytes: f.bytes,
    ...(f.externalData ? { externalData: { ...f.externalData } } : {}),
    from: f.from,
    requantized: f.requantized.map((r) => ({ weight: r.weight, reason: r.reason })),
  }));
}

export interface PlanFileLayer {
  index: number;
  dropped: boolean;
  keptGroups: number[];
  keptNeurons: number[];
  heads: { before: number; after: number };
  kvHeads: { before: number; after: number };
  ffnWidth: { before: number; after: number };
  /** Attention+FFN parameters of the layer. */
  params: { before: number; after: number };
  /** The layer's term of the score: alpha * A_l + (1 - alpha) * F_l (log variant: of log(1 + .)). */
  score: { before: number; after: number };
}

export interface PruneResult {
  /** The plan, with `score.after` the score of the corrected model. */
  plan: PlanResult;
  planFile: PlanFile;
  /** The written folder; absent with `planOnly`. */
  export?: ExportResult;
  /** The corrected rows of `o` / `down` written (empty without a correction). */
  overrides: WeightOverride[];
  timings: { planMs: number; correctionMs: number; exportMs: number; totalMs: number };
}

/** What a correction changed, for `planFile`. */
export interface AppliedCorrection {
  summary: CorrectionSummary;
  overrides: readonly WeightOverride[];
  calibration?: CalibrationSummary;
  /** Time spent on the correction: waiting for the calibration, and the correction itself. */
  calibrationMs?: number;
  ms?: number;
}

/** The phase timings of a plan (and its correction and export, when given). */
export function pruneTimings(result: PlanResult, correction?: AppliedCorrection, exportMs = 0, totalMs?: number): PruneTimings {
  const t = result.timings;
  const calibration = result.importanceDetails?.calibration ?? correction?.calibration;
  const calibrationMs = t.calibrationMs + (correction?.calibrationMs ?? 0);
  return {
    calibrationMs,
    ...(calibration ? { sequencesMs: calibration.timings.sequencesMs, statisticsMs: calibration.timings.statisticsMs } : {}),
    importanceMs: t.rankingMs - t.calibrationMs,
    searchMs: t.scoringMs + t.greedyMs + t.evolutionMs + t.latencyMs,
    correctionMs: correction?.ms ?? 0,
    exportMs,
    totalMs: totalMs ?? t.totalMs + calibrationMs - t.calibrationMs + (correction?.ms ?? 0) + exportMs,
  };
}

function layerTerms(graph: ModuleGraph, result: PlanResult): number[] {
  const capacity = graphCapacity(graph, { measure: result.measure });
  const term = (a: number, f: number) =>
    result.variant === 'log' ? result.alpha * Math.log1p(a) + (1 - result.alpha) * Math.log1p(f) : result.alpha * a + (1 - result.alpha) * f;
  return capacity.layers.map((l) => term(l.attention.capacity, l.ffn.capacity));
}

/**
 * plan.json: the plan per layer with parameters and score before and after, and how it was
 * found; with `correction`, the scores are those of the corrected weights.
 */
export function planFile(model: HfModel, result: PlanResult, options: PruneOptions, correction?: AppliedCorrection): PlanFile {
  // Dropped layers are kept in this graph (with their kept units) so its layers line up with the source's.
  const alignedPlan = { layers: result.plan.layers.map((l) => ({ ...l, dropped: false, keptGroups: l.keptGroups.length ? l.keptGroups : [0], keptNeurons: l.keptNeurons.length ? l.keptNeurons : [0] })) };
  const aligned = correction ? correctedGraph(model.graph, alignedPlan, correction.overrides) : prunedGraph(model.graph, alignedPlan);
  const before = layerTerms(model.graph, result);
  const after = layerTerms(aligned, result);
  const layers = result.plan.layers.map((lp, i): PlanFileLayer => {
    const source = model.graph.layers[i]!;
    const kept = aligned.layers[i]!;
    const paramsOf = (l: typeof source) => moduleParams(l.attention) + moduleParams(l.ffn);
    return {
      index: i,
      dropped: lp.dropped,
      keptGroups: lp.keptGroups,
      keptNeurons: lp.keptNeurons,
      heads: { before: source.attention.heads, after: lp.dropped ? 0 : kept.attention.heads },
      kvHeads: { before: source.attention.kvHeads, after: lp.dropped ? 0 : kept.attention.kvHeads },
      ffnWidth: { before: source.ffn.width, after: lp.dropped ? 0 : kept.ffn.width },
      params: { before: paramsOf(source), after: lp.dropped ? 0 : paramsOf(kept) },
      score: { before: before[i]!, after: lp.dropped ? 0 : after[i]! },
    };
  });
  return {
    source: path.resolve(model.dir),
    dtype: model.dtype,
    family: model.config.modelType,
    measure: result.measure,
    alpha: result.alpha,
    variant: result.variant,
    budget: {
      ...(options.targetParams !== undefined ? { targetParams: options.targetParams } : {}),
      ...(options.targetFlops !== undefined ? { targetFlops: options.targetFlops } : {}),
      ...(options.maxLatencyMs !== undefined ? { maxLatencyMs: options.maxLatencyMs } : {}),
      seqLen: result.flops.seqLen,
      ...(result.params.budget !== undefined ? { params: result.params.budget } : {}),
      ...(result.flops.budget !== undefined ? { flops: result.flops.budget } : {}),
    },
    search: { ...result.search, evaluations: result.evaluations, scoredRows: result.scoredRows },
    provider: result.provider,
    ...(result.providerReason ? { providerReason: result.providerReason } : {}),
    importance: { rule: result.search.importance, ...withoutCalibration(result.importanceDetails) },
    ...(calibrationOf(result, correction) ? { calibration: calibrationOf(result, correction)! } : {}),
    correction: correction?.summary ?? { method: 'none' },
    params: result.params,
    flops: result.flops,
    score: result.score,
    layers,
    ...(result.latency ? { latency: result.latency } : {}),
    timings: pruneTimings(result, correction),
  };
}

function withoutCalibration(details: ImportanceDetails | undefined): Omit<ImportanceDetails, 'calibration'> {
  if (!details) return {};
  const { calibration: _calibration, ...rest } = details;
  void _calibration;
  return rest;
}

function calibrationOf(result: PlanResult, correction: AppliedCorrection | undefined): CalibrationSummary | undefined {
  return result.importanceDetails?.calibration ?? correction?.calibration;
}

/**
 * Latency of a plan, measured the way it will run: the candidate is exported to a temporary
 * folder and timed with onnxruntime (batch 1, `seqLen` tokens, median of `runs`).
 */
function latencyProbe(model: HfModel, seqLen: number, runs: number, device: Device | undefined): (plan: PrunePlan) => Promise<number> {
  return async (plan) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-latency-'));
    const out = path.join(dir, 'candidate');
    try {
      await exportPrunedModel(model.dir, plan, out, { verify: false, dtypes: [model.dtype] });
      const runner = await ModelRunner.open(loadHfModel(out, { dtype: model.dtype }), device ?? 'auto');
      try {
        const batch = latencyBatch(Int32Array.from({ length: seqLen }, (_, i) => 5 + (i % 50)), 1, seqLen);
        const [stats] = await measureLatencies([() => runner.run(batch)], runs, 2);
        return stats!.medianMs;
      } finally {
        await runner.release();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** Replaces `file` with `text` through a temporary file in the same folder and a rename. */
function writeFileAtomic(file: string, text: string): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    fs.writeFileSync(temp, text);
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw new Error(`cannot write ${file}: ${(error as Error).message}`);
  }
}

/** The plan, the correction and plan.json of `prune`, before anything is written. */
async function planAndCorrect(
  modelDir: string,
  options: PruneOptions,
  started: number,
): Promise<{ result: PlanResult; file: PlanFile; applied?: AppliedCorrection; overrides: WeightOverride[]; planMs: number; correctionMs: number }> {
  const correction = checkCorrection(options.correction ?? DEFAULT_CORRECTION);
  // Planned from one file: fp32 when present, else the most precise format present (dequantized).
  const model = loadHfModel(modelDir, { dtype: 'auto' });
  // Refused before any calibration runs, rather than after the planning.
  const refusal = options.planOnly ? undefined : exportRefusal(model);
  if (refusal) throw new Error(`cannot prune ${model.file}: ${refusal}`);
  // A bad calibration text fails here, before any planning, whether or not a rule reads it.
  if (options.calibration?.text !== undefined) readCalibrationText(options.calibration.text);
  const seqLen = options.seqLen ?? 128;
  const limit = positionLimit(model.config);
  if (options.maxLatencyMs !== undefined && limit !== undefined && seqLen > limit) {
    throw new Error(`the latency is measured at ${seqLen} tokens (seqLen) but ${modelDir} reads at most ${limit} positions`);
  }
  const latencyOf = options.maxLatencyMs !== undefined ? latencyProbe(model, seqLen, options.latencyRuns ?? 10, options.device) : undefined;
  const { correction: _correction, dtypes: _dtypes, ...planOptions } = options;
  void _correction;
  void _dtypes;
  const searched = await planPrune(model.graph, { ...planOptions, model, ...(latencyOf ? { latencyOf } : {}) });
  const planMs = performance.now() - started;

  const correctionStarted = performance.now();
  let applied: AppliedCorrection | undefined;
  let result = searched;
  if (correction !== 'none') {
    // The same calibration the importance rule used (cached), or a new one for weight rules.
    options.onProgress?.(0, 1, 'calibration');
    const waited = performance.now();
    const calibration = await calibrate(model, {
      ...options.calibration,
      seed: options.calibration?.seed ?? options.seed ?? 0,
      device: options.device ?? 'auto',
      ...(options.onProgress ? { onProgress: (done: number, total: number) => options.onProgress!(done, total, 'calibration') } : {}),
    });
    const calibrationMs = performance.now() - waited;
    const correctionWorkStarted = performance.now();
    const overrides =
      correction === 'refit'
        ? await refitOverrides(model, searched.plan, calibration, { device: options.device ?? 'auto' })
        : biasOverrides(model, searched.plan, calibration);
    applied = {
      summary: correctionSummary(correction, overrides, model),
      overrides,
      calibration: calibration.summary,
      calibrationMs,
      ms: performance.now() - correctionWorkStarted,
    };
    // Bias-only overrides leave the matrices, and so the score, as searched.
    if (overrides.some((o) => o.values !== undefined)) {
      const after = scoreReport(correctedGraph(model.graph, searched.plan, overrides), { measure: searched.measure, alpha: searched.alpha, variant: searched.variant }).score;
      result = { ...searched, score: { ...searched.score, after } };
    }
  }
  const correctionMs = performance.now() - correctionStarted;
  const overrides = applied ? [...applied.overrides] : [];
  const file = planFile(model, result, options, applied);
  file.timings = pruneTimings(result, applied, 0, performance.now() - started);
  return { result, file, ...(applied ? { applied } : {}), overrides, planMs, correctionMs };
}

/** Plans and exports a pruned model; see the package README ("Prune"). */
export async function prune(modelDir: string, options: PruneOptions): Promise<PruneResult> {
  const started = performance.now();
  if (!options.planOnly && !options.out) throw new Error('name the output folder (out), or ask for the plan only (planOnly)');
  // The planned model goes out of scope here: the export reads its files afresh, and a
  // single-file model held twice is what set the peak memory of the whole run.
  const { result, file, applied, overrides, planMs, correctionMs } = await planAndCorrect(modelDir, options, started);
  const timings = (exportMs: number) => ({ planMs, correctionMs, exportMs, totalMs: performance.now() - started });
  if (options.planOnly) return { plan: result, planFile: file, overrides, timings: timings(0) };
  const exportStarted = performance.now();
  const exported = await exportPrunedModel(modelDir, result.plan, options.out!, {
    force: options.force ?? false,
    zerolm: {
      budget: file.budget,
      measure: result.measure,
      alpha: result.alpha,
      params: result.params,
      score: result.score,
      importance: file.search.importance,
      correction: file.correction.method,
    },
    files: { 'plan.json': (written) => `${JSON.stringify({ ...file, files: planFileOnnx(written.onnxFiles) }, null, 2)}\n` },
    overrides,
    ...(options.dtypes ? { dtypes: options.dtypes } : {}),
  });
  file.files = planFileOnnx(exported.onnxFiles);
  // The export's own time is known only now: plan.json is rewritten (atomically) with it.
  const exportMs = performance.now() - exportStarted;
  file.timings = pruneTimings(result, applied, exportMs, performance.now() - started);
  writeFileAtomic(path.join(exported.outDir, 'plan.json'), `${JSON.stringify(file, null, 2)}\n`);
  return { plan: result, planFile: file, export: exported, overrides, timings: timings(exportMs) };
}

export interface SweepOptions extends Omit<PruneOptions, 'targetParams' | 'out' | 'planOnly'> {
  /** The output folder; each budget goes to `<out>/p<percent>`. */
  out: string;
  /** Fractions of the Attention+FFN parameters, each in (0, 1). */
  fractions: readonly number[];
  /** Options of the comparison that ends the sweep. */
  compare?: CompareOptions;
  onVariant?: (fraction: number, result: PruneResult) => void;
}

export interface SweepResult {
  variants: { fraction: number; dir: string; result: PruneResult }[];
  comparison: ComparisonReport;
}

/** `p90` for 0.9, `p75` for 0.75, `p12.5` for 0.125. */
export function sweepFolderName(fraction: number): string {
  return `p${Number((fraction * 100).toFixed(4))}`;
}

/** One pruned variant per budget, then all of them compared with the source model. */
export async function pruneSweep(modelDir: string, options: SweepOptions): Promise<SweepResult> {
  const fractions = [...options.fractions];
  if (fractions.length === 0) throw new Error('the sweep needs at least one budget');
  for (const f of fractions) if (!(f > 0 && f < 1)) throw new Error(`sweep budgets are fractions in (0, 1) (got ${f})`);
  const names = fractions.map(sweepFolderName);
  if (new Set(names).size !== names.length) throw new Error(`the sweep lists a budget twice (${fractions.join(', ')})`);
  const { compare, onVariant, fractions: _omitted, ...pruneOptions } = options;
  void _omitted;
  const variants: SweepResult['variants'] = [];
  for (const [i, fraction] of fractions.entries()) {
    const dir = path.join(options.out, names[i]!);
    const result = await prune(modelDir, { ...pruneOptions, targetParams: fraction, out: dir });
    variants.push({ fraction, dir, result });
    onVariant?.(fraction, result);
  }
  // Compared on the file the plans were made from (fp32, or the most precise one present), when written.
  const planned = variants[0]!.result.planFile.dtype as ModelDtype;
  const comparedDtype = options.dtypes && !options.dtypes.includes(planned) ? undefined : planned;
  const comparison = await compareModels(modelDir, variants.map((v) => v.dir), {
    device: options.device,
    ...(comparedDtype ? { dtype: comparedDtype } : {}),
    measure: resolveMeasure(options.measure ?? DEFAULT_PRUNE_MEASURE).name,
    alpha: options.alpha,
    ...compare,
  });
  return { variants, comparison };
}
