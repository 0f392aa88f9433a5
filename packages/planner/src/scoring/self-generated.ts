/**
 * `self-generated` (the default importance): units ranked by how much the model's output on its
 * calibration sequences needs them. By default those are the model's own samples (data-free in
 * the sense LLM-QAT uses: decoders generate from their BOS token, fill-mask encoders sample from
 * their masked-LM head; no text is read, no gradients are taken; encoders without that head fall
 * back to uniform tokens); `calibration.source` may name a text file instead. See
 * `calibration/calibrate.ts` for the sequences and the statistics.
 *
 * - FFN neurons, at every width: greedy structured OBS on (C_h + lambda I, W_down), C_h the second
 *   moment of the hidden activations (centred where `down` has an output bias); the removal
 *   order, reversed, is the importance. Exact (one neuron per step) up to 1024 neurons; wider
 *   FFNs in 64 steps of ceil(w / 64) neurons, whose algebra (O(w^3) per layer) runs on
 *   onnxruntime (`OrtAlgebra`: CUDA where it starts, else the CPU provider's GEMMs), one layer's
 *   statistics at a time. `ffnImportance: 'chunked-obs'` forces the 64 steps at any width (what
 *   the quality benchmark measures on the small trained models), `'energy'` the diagonal
 *   E[h_j^2] ||down_j||^2 (the rule wide FFNs used to fall back to).
 * - Attention units (a key-value group with its query heads): greedy removal by the output change
 *   after the least-squares refit of `o`, one layer at a time (`klAttentionOrders`): the KL of the
 *   model's own next-token distributions for decoders (`kl`), the squared change of the final
 *   hidden states for encoders (`hidden`). It runs the whole model once per candidate, so models
 *   whose ranking would take more than 96 passes or 1e13 FLOPs (or too much memory for the
 *   reference outputs) use block OBS on (C_c + lambda I, W_o) instead, the same output-error
 *   criterion on the layer alone; `attentionImportance: 'block-obs'` forces it, `'ablation'` refuses
 *   to fall back. The plan result says which, per layer, and why.
 */
import type { HfModel } from '@zerolm/adapters';
import { countParams, hasPrunableHeads, type Layer } from '@zerolm/core';
import { performance } from 'perf_hooks';
import { ablationCriterion, criterionWidth, DEFAULT_MAX_KL_PASSES, groupRows, klAttentionOrders, klPasses, MAX_REFERENCE_BYTES, outputProjection } from '../calibration/ablation';
import { ORT_MIN_SIZE, OrtAlgebra } from '../calibration/algebra';
import type { Calibration } from '../calibration/calibrate';
import { centred, obsInverseOnOrt, obsOrderFromInverse, obsOrderFromInverseOnOrt, obsRemovalOrder, ridgeShift } from '../calibration/obs';
import {
  registerImportance,
  type AttentionImportanceMethod,
  type FfnImportanceMethod,
  type FfnRanking,
  type ImportanceDetails,
  type UnitImportance,
} from './importance';
import type { UnitKind } from './unit-norms';

/** FFNs up to this width get the exact greedy OBS (one neuron per step) by default. */
export const EXACT_OBS_MAX_WIDTH = 1024;
/** Wider FFNs (and every FFN with `chunked-obs`) are ranked in this many OBS steps. */
export const OBS_STEPS = 64;
/** The KL ranking runs the whole model once per candidate: at most this many FLOPs in all (else block OBS). */
export const DEFAULT_MAX_KL_FLOPS = 1e13;

/** Scores from a removal order: the first removed scores 0, the last `order.length - 1`. */
export function scoresFromOrder(order: readonly number[]): Float64Array {
  const scores = new Float64Array(order.length);
  order.forEach((unit, position) => (scores[unit] = position));
  return scores;
}

/** The down matrix of a layer (module-graph orientation, `width x hidden`) and whether it has an output bias. */
function downProjection(model: HfModel, layerIndex: number): { weights: Float64Array; rows: number; cols: number; hasBias: boolean } {
  const down = model.graph.layers[layerIndex]!.ffn.matrices.find((m) => m.role === 'down')!;
  return { weights: Float64Array.from(down.values()), rows: down.rows, cols: down.cols, hasBias: model.match.layers[layerIndex]!.ffn.down.bias !== undefined };
}

/** How `method` ranks the neurons of an FFN of `width` (and why, when not by the exact greedy). */
export function ffnRanking(method: FfnImportanceMethod, width: number): FfnRanking {
  if (method === 'energy') return { method: 'energy', reason: 'asked for (--ffn-importance energy)' };
  const chunk = Math.ceil(width / OBS_STEPS);
  if (method === 'obs' && (width <= EXACT_OBS_MAX_WIDTH || chunk === 1)) return { method: 'obs' };
  return {
    method: 'chunked-obs',
    chunk,
    steps: Math.ceil(width / chunk),
    reason:
      method === 'chunked-obs'
        ? `asked for (--ffn-importance chunked-obs): ${OBS_STEPS} steps of ${chunk}`
        : `${width} neurons: the greedy removes ${chunk} per step (${OBS_STEPS} steps) above ${EXACT_OBS_MAX_WIDTH}`,
  };
}

/** The FFN neuron ranking of one layer and how it was made. */
export async function rankNeurons(
  model: HfModel,
  calibration: Calibration,
  layerIndex: number,
  options: { method?: FfnImportanceMethod; algebra?: OrtAlgebra } = {},
): Promise<{ scores: Float64Array; method: FfnRanking }> {
  const { weights, rows: width, cols, hasBias } = downProjection(model, layerIndex);
  const ranking = ffnRanking(options.method ?? 'obs', width);
  /** The second moment the rule reads (read through the calibration each time: see below). */
  const second = (): Float64Array => {
    const moments = calibration.layers[layerIndex]!.ffn;
    return hasBias ? centred(moments.second, moments.mean) : moments.second;
  };
  if (ranking.method === 'energy') {
    const moment = calibration.layers[layerIndex]!.ffn.second;
    const scores = new Float64Array(width);
    for (let j = 0; j < width; j++) {
      let norm = 0;
      for (let c = j * cols; c < (j + 1) * cols; c++) norm += weights[c]! * weights[c]!;
      scores[j] = moment[j * width + j]! * norm;
    }
    return { scores, method: ranking };
  }
  const problem = { n: width, weights, d: cols, units: Array.from({ length: width }, (_, j) => [j]), chunk: ranking.chunk ?? 1 };
  // Chunked steps on wide FFNs go to onnxruntime (its GEMMs, CUDA where it starts); exact steps
  // stay in TypeScript. No name here holds the second moment across the steps: once inverted it
  // can be freed (moments on disk are held weakly by their store).
  const order =
    options.algebra && ranking.method === 'chunked-obs' && width > ORT_MIN_SIZE
      ? await obsOrderFromInverseOnOrt(await obsInverseOnOrt(second(), width, options.algebra), problem, options.algebra)
      : obsRemovalOrder({ ...problem, second: second() });
  return { scores: scoresFromOrder(order), method: ranking };
}

/** Block OBS on `o`: the attention ranking of one layer without running the model again (the inverse on onnxruntime when given). */
export async function blockObsGroups(model: HfModel, calibration: Calibration, layerIndex: number, algebra?: OrtAlgebra): Promise<Float64Array> {
  const layer = model.graph.layers[layerIndex]!;
  const p = outputProjection(model, layerIndex);
  const moments = calibration.layers[layerIndex]!.attention;
  const problem = {
    second: p.bias ? centred(moments.second, moments.mean) : moments.second,
    n: p.rows,
    weights: p.weights,
    d: p.cols,
    units: Array.from({ length: layer.attention.kvHeads }, (_, g) => groupRows(layer, g)),
  };
  const order = algebra
    ? obsOrderFromInverse(await algebra.inverseSpd(problem.second, problem.n, 'the regularized second moment', ridgeShift(problem.second, problem.n)), problem)
    : obsRemovalOrder(problem);
  return scoresFromOrder(order);
}

/**
 * Why the output-change path (KL, hidden states) cannot rank this model's attention units
 * (undefined when it can). It runs the whole model once per candidate, so it is for models small
 * enough to do that many times: at most `maxPasses` passes and `maxFlops` FLOPs in all
 * (2 x parameters x tokens per pass).
 */
export function klUnavailable(model: HfModel, calibration: Calibration, maxPasses = DEFAULT_MAX_KL_PASSES, maxFlops = DEFAULT_MAX_KL_FLOPS): string | undefined {
  const criterion = ablationCriterion(model);
  const what = criterion === 'kl' ? 'KL' : 'the change of the hidden states';
  const passes = klPasses(model.graph.layers);
  if (passes > maxPasses) return `ranking by ${what} would take ${passes} passes over the calibration sequences (limit ${maxPasses})`;
  const { samples, length } = calibration.sequences;
  const flops = passes * 2 * (countParams(model.graph).total ?? 0) * samples * length;
  if (flops > maxFlops) return `ranking by ${what} would run the whole model ${passes} times, ${flops.toExponential(1)} FLOPs (limit ${maxFlops.toExponential(0)})`;
  const bytes = samples * length * criterionWidth(model, calibration, criterion) * 4;
  if (bytes > MAX_REFERENCE_BYTES) {
    const outputs = criterion === 'kl' ? 'log-probabilities' : 'hidden states';
    return `the full model's ${outputs} on the calibration sequences would take ${(bytes / 2 ** 20).toFixed(0)} MiB (limit ${MAX_REFERENCE_BYTES / 2 ** 20} MiB)`;
  }
  return undefined;
}

export const selfGeneratedImportance: UnitImportance = {
  name: 'self-generated',
  description:
    'activation statistics on the calibration sequences (by default the model\'s own samples: no text, no gradients): structured OBS for FFN neurons, the output change (KL of its predictions, or of its hidden states for encoders) for attention units',
  async prepare(context) {
    const { model } = context;
    const calibration = await context.calibration();
    const layers = model.graph.layers;
    const ffnMethod = context.ffnImportance ?? 'obs';
    const attentionMethod: AttentionImportanceMethod = context.attentionImportance ?? 'auto';
    // The heavy algebra (wide FFNs, wide attention) on onnxruntime; small models never open it.
    const wide = layers.some((l) => l.ffn.width > EXACT_OBS_MAX_WIDTH || l.attention.heads * l.attention.headDim > ORT_MIN_SIZE);
    const algebra = wide ? await OrtAlgebra.open(context.device) : undefined;
    try {
      const ffnStarted = performance.now();
      const neurons: Float64Array[] = [];
      const ffnMethods: NonNullable<ImportanceDetails['ffn']> = [];
      for (const i of layers.keys()) {
        const ranked = await rankNeurons(model, calibration, i, { method: ffnMethod, ...(algebra ? { algebra } : {}) });
        neurons.push(ranked.scores);
        ffnMethods.push(ranked.method);
        context.onProgress?.(i + 1, layers.length, 'importance');
      }
      const ffnMs = performance.now() - ffnStarted;
      const attentionStarted = performance.now();
      const unavailable = klUnavailable(model, calibration);
      const reason = attentionMethod === 'block-obs' ? 'asked for (--attention-importance block-obs)' : unavailable;
      if (attentionMethod === 'ablation' && unavailable !== undefined) throw new Error(`--attention-importance ablation cannot rank ${model.dir}: ${unavailable}`);
      let groups: Float64Array[];
      let attention: NonNullable<ImportanceDetails['attention']>;
      if (reason === undefined) {
        const kl = await klAttentionOrders(model, calibration, {
          device: context.device,
          ...(context.onProgress ? { onProgress: (done: number, total: number) => context.onProgress!(done, total, 'importance') } : {}),
        });
        groups = kl.orders.map(scoresFromOrder);
        attention = { method: ablationCriterion(model), passes: kl.passes };
      } else {
        groups = [];
        for (const [i, layer] of layers.entries()) {
          groups.push(hasPrunableHeads(layer.attention) ? await blockObsGroups(model, calibration, i, algebra) : new Float64Array(layer.attention.kvHeads));
        }
        attention = { method: 'block-obs', reason };
      }
      const byLayer = new Map<Layer, number>(context.graph.layers.map((l, i) => [l, i]));
      return {
        scores(layer: Layer, kind: UnitKind) {
          const i = byLayer.get(layer) ?? layer.index;
          return kind === 'ffn' ? neurons[i]! : groups[i]!;
        },
        details: {
          calibration: calibration.summary,
          attention,
          ffn: ffnMethods,
          ...(algebra ? { algebra: { provider: algebra.provider, ...(algebra.fallbackReason ? { reason: algebra.fallbackReason } : {}) } } : {}),
          timings: { ffnMs, attentionMs: performance.now() - attentionStarted },
        },
      };
    } finally {
      await algebra?.release();
    }
  },
};

registerImportance(selfGeneratedImportance);
