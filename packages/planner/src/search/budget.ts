/**
 * What a candidate costs: Attention+FFN parameters and FLOPs per token, both linear in the kept
 * counts of each layer, and the budgets a plan must meet.
 *
 * FLOPs per token at sequence length `seqLen`, per layer:
 *   2 x (multiply-adds of every Attention and FFN matrix: rows x cols each)
 *   + 2 x 2 x seqLen x heads x headDim   (attention scores q·k and the weighted sum of v)
 * Biases, norms, softmax and activations are not counted; neither are embeddings or the LM head.
 */
import { cutAxis, groupRange, groupSize, hasPrunableHeads, moduleParams, type Layer, type ModuleGraph, type WeightMatrix } from '@zerolm/core';

export const DEFAULT_SEQ_LEN = 128;

/** A cost linear in the number of kept units: fixed + perUnit x units. */
export interface LinearCost {
  fixed: number;
  perUnit: number;
}

export interface LayerCost {
  /** Attention parameters as a function of kept kv groups. */
  attentionParams: LinearCost;
  /** FFN parameters as a function of kept neurons. */
  ffnParams: LinearCost;
  attentionFlops: LinearCost;
  ffnFlops: LinearCost;
}

function otherDim(matrix: WeightMatrix): number {
  return cutAxis(matrix) === 'cols' ? matrix.rows : matrix.cols;
}

function attentionScoreFlops(layer: Layer, heads: number, seqLen: number): number {
  const a = layer.attention;
  return a.kind === 'attention' && a.headDim > 0 ? 4 * seqLen * heads * a.headDim : 0;
}

function matrixFlops(matrices: readonly WeightMatrix[]): number {
  let sum = 0;
  for (const m of matrices) sum += 2 * m.rows * m.cols;
  return sum;
}

/** FLOPs per token of one layer at `seqLen` (see the file comment). */
export function layerFlops(layer: Layer, seqLen: number = DEFAULT_SEQ_LEN): number {
  return matrixFlops(layer.attention.matrices) + matrixFlops(layer.ffn.matrices) + attentionScoreFlops(layer, layer.attention.heads, seqLen);
}

/** FLOPs per token of a module graph's Attention and FFN modules at `seqLen`. */
export function graphFlops(graph: ModuleGraph, seqLen: number = DEFAULT_SEQ_LEN): number {
  let sum = 0;
  for (const layer of graph.layers) sum += layerFlops(layer, seqLen);
  return sum;
}

/** The linear cost model of one layer, matching `countParams(prunedGraph(...))` and `graphFlops`. */
export function layerCost(layer: Layer, seqLen: number = DEFAULT_SEQ_LEN): LayerCost {
  const a = layer.attention;
  const f = layer.ffn;
  let groupParams = 0;
  let groupFlops = 0;
  if (hasPrunableHeads(a)) {
    for (const m of a.matrices) {
      if (!cutAxis(m)) continue;
      const [start, end] = groupRange(a, m, 0);
      groupParams += otherDim(m) * (end - start);
      groupFlops += 2 * otherDim(m) * (end - start);
    }
    for (const b of a.biases) {
      const owner = a.matrices.find((m) => m.role === b.role);
      if (owner && cutAxis(owner) === 'cols') {
        const [start, end] = groupRange(a, owner, 0);
        groupParams += end - start;
      }
    }
    groupFlops += attentionScoreFlops(layer, groupSize(a), seqLen);
  }
  let neuronParams = 0;
  for (const m of f.matrices) if (cutAxis(m)) neuronParams += otherDim(m);
  for (const b of f.biases) {
    const owner = f.matrices.find((m) => m.role === b.role);
    if (owner && cutAxis(owner) === 'cols') neuronParams += 1;
  }
  const neuronFlops = 2 * f.matrices.reduce((s, m) => s + (cutAxis(m) ? otherDim(m) : 0), 0);
  const attentionFlops = matrixFlops(a.matrices) + attentionScoreFlops(layer, a.heads, seqLen);
  const ffnFlops = matrixFlops(f.matrices);
  return {
    attentionParams: { fixed: moduleParams(a) - a.kvHeads * groupParams, perUnit: groupParams },
    ffnParams: { fixed: moduleParams(f) - f.width * neuronParams, perUnit: neuronParams },
    attentionFlops: { fixed: attentionFlops - a.kvHeads * groupFlops, perUnit: groupFlops },
    ffnFlops: { fixed: ffnFlops - f.width * neuronFlops, perUnit: neuronFlops },
  };
}

/**
 * An absolute budget from a target: a fraction in (0, 1] of `full`, or a whole count > 1.
 * `what` names the option in errors.
 */
export function resolveTarget(value: number | undefined, full: number, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || Number.isNaN(value)) throw new Error(`${what} must be a number (got ${String(value)})`);
  if (value > 0 && value <= 1) return value * full;
  if (value > 1 && Number.isInteger(value)) return value;
  throw new Error(`${what} must be a fraction in (0, 1] or a whole count > 1 (got ${value})`);
}
