/**
 * The statistics pass: per layer, the second moment E[h h^T] and the mean E[h] of the input of
 * the FFN's `down` multiply (the hidden activations) and of the attention's `o` multiply (the
 * concatenated per-head context), over every position of the calibration sequences.
 *
 * A copy of the fp32 graph gets extra outputs that reduce those tensors inside onnxruntime, per
 * batch of about 1024 rows: the sum of x and the sum of (x - m)(x - m)^T about the batch mean m
 * (float32, accurate to the features' spread); batches are combined in float64 as
 * E[x x^T] = sum over batches of (G + n m m^T) / N. When all layers' matrices would exceed `maxBytes` (default 2 GiB), layers are taken in
 * groups, one forward pass over the sequences per group.
 */
import type { HfModel } from '@zerolm/adapters';
import { cacheInputs, fullPassFeeds, ort, type Device } from '@zerolm/runtime';
import { addMomentOutputs, editableCopy, openEdited } from './graph-copy';

/** E[h h^T] and E[h] of one tensor's features over `count` rows. */
export interface Moments {
  readonly dim: number;
  readonly count: number;
  /** `dim x dim`, row-major, symmetric. */
  readonly second: Float64Array;
  readonly mean: Float64Array;
}

export interface LayerMoments {
  /** Index of the layer in the source model. */
  readonly index: number;
  /** Of the input of `down` (width: the FFN's neurons). */
  readonly ffn: Moments;
  /** Of the input of `o` (width: heads x head size). */
  readonly attention: Moments;
}

export interface StatisticsOptions {
  device?: Device;
  /** Bytes of float64 matrices accumulated per pass (default 2 GiB). */
  maxBytes?: number;
  /** Rows (tokens) per onnxruntime run (default 1024). */
  rowsPerBatch?: number;
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_STATISTICS_BYTES = 2 ** 31;

interface Accumulator {
  dim: number;
  gram: string;
  sum: string;
  second: Float64Array;
  mean: Float64Array;
}

/** Layer groups whose float64 matrices fit in `maxBytes` together (a single layer always forms a group). */
export function layerGroups(model: HfModel, maxBytes: number): number[][] {
  const groups: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  model.graph.layers.forEach((layer, i) => {
    const a = layer.attention.heads * layer.attention.headDim;
    const size = 8 * (layer.ffn.width ** 2 + a ** 2);
    if (current.length > 0 && bytes + size > maxBytes) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(i);
    bytes += size;
  });
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * The moments of every layer of `model` over `tokens` (`[samples, length]`, row-major). Returns
 * them with the number of forward passes made over the sequences.
 */
export async function collectMoments(
  model: HfModel,
  tokens: Int32Array,
  samples: number,
  length: number,
  options: StatisticsOptions = {},
): Promise<{ layers: LayerMoments[]; passes: number }> {
  const groups = layerGroups(model, options.maxBytes ?? DEFAULT_STATISTICS_BYTES);
  const perRun = Math.max(1, Math.min(samples, Math.floor((options.rowsPerBatch ?? 1024) / length)));
  const runs = Math.ceil(samples / perRun);
  const layers: LayerMoments[] = new Array(model.graph.layers.length);
  let done = 0;
  for (const group of groups) {
    const edit = editableCopy(model);
    const accumulators = new Map<number, { ffn: Accumulator; attention: Accumulator }>();
    for (const i of group) {
      const match = model.match.layers[i]!;
      const layer = model.graph.layers[i]!;
      const make = (tensor: string, dim: number, kind: string): Accumulator => ({
        dim,
        ...addMomentOutputs(edit, tensor, dim, `zerolm/calibration/${i}/${kind}`),
        second: new Float64Array(dim * dim),
        mean: new Float64Array(dim),
      });
      accumulators.set(i, {
        ffn: make(match.ffn.down.node.input[0]!, layer.ffn.width, 'ffn'),
        attention: make(match.attention.o.node.input[0]!, layer.attention.heads * layer.attention.headDim, 'attention'),
      });
    }
    // Only the moments are outputs: onnxruntime then drops what they do not need (the LM head,
    // the cache outputs, the layers after the group's last).
    const wanted = new Set([...accumulators.values()].flatMap((a) => [a.ffn.gram, a.ffn.sum, a.attention.gram, a.attention.sum]));
    edit.graph.output = edit.graph.output.filter((o) => wanted.has(o.name ?? ''));
    const opened = await openEdited(edit, options.device ?? 'auto');
    try {
      const cache = cacheInputs(opened.session, model);
      const fetches = [...accumulators.values()].flatMap((a) => [a.ffn.gram, a.ffn.sum, a.attention.gram, a.attention.sum]);
      for (let start = 0; start < samples; start += perRun) {
        const batch = Math.min(perRun, samples - start);
        const ids = new BigInt64Array(batch * length);
        for (let i = 0; i < ids.length; i++) ids[i] = BigInt(tokens[start * length + i]!);
        const feeds = fullPassFeeds(opened.session, cache, { batch, seqLen: length, ids, mask: new BigInt64Array(batch * length).fill(1n) });
        let outputs: ort.InferenceSession.OnnxValueMapType;
        try {
          outputs = await opened.session.run(feeds, fetches);
        } catch (error) {
          throw new Error(`onnxruntime failed on the calibration pass of ${model.file}: ${(error as Error).message.split('\n')[0]}`);
        }
        const rows = batch * length;
        for (const pair of accumulators.values()) {
          for (const acc of [pair.ffn, pair.attention]) {
            const sum = values(outputs[acc.sum], acc.sum, acc.dim);
            const gram = values(outputs[acc.gram], acc.gram, acc.dim * acc.dim);
            addBatch(acc, gram, sum, rows);
          }
        }
        options.onProgress?.(++done, runs * groups.length);
      }
    } finally {
      await opened.release();
    }
    const count = samples * length;
    for (const [i, pair] of accumulators) {
      const finish = (acc: Accumulator): Moments => {
        for (let k = 0; k < acc.second.length; k++) acc.second[k] /= count;
        for (let k = 0; k < acc.mean.length; k++) acc.mean[k] /= count;
        // The in-graph float32 sums are symmetric up to rounding; make them exactly so.
        const n = acc.dim;
        for (let r = 0; r < n; r++) {
          for (let c = r + 1; c < n; c++) {
            const v = 0.5 * (acc.second[r * n + c]! + acc.second[c * n + r]!);
            acc.second[r * n + c] = v;
            acc.second[c * n + r] = v;
          }
        }
        return { dim: n, count, second: acc.second, mean: acc.mean };
      };
      layers[i] = { index: i, ffn: finish(pair.ffn), attention: finish(pair.attention) };
    }
  }
  return { layers, passes: groups.length };
}

function values(tensor: ort.Tensor | undefined, name: string, length: number): Float32Array {
  if (!tensor || tensor.type !== 'float32') throw new Error(`internal: calibration output ${name} is missing or not float32`);
  const data = tensor.data as Float32Array;
  if (data.length !== length) throw new Error(`internal: calibration output ${name} has ${data.length} values, expected ${length}`);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new Error(`the calibration pass produced ${data[i]} in ${name}: the model's activations overflow on its own samples`);
  }
  return data;
}

/** Adds one batch: its centred Gram G and sum s over n rows, as G + n m m^T (m = s / n) and s. */
function addBatch(acc: Accumulator, gram: Float32Array, sum: Float32Array, rows: number): void {
  const n = acc.dim;
  const mean = Float64Array.from(sum, (v) => v / rows);
  for (let r = 0; r < n; r++) {
    const scaled = rows * mean[r]!;
    const base = r * n;
    for (let c = 0; c < n; c++) acc.second[base + c] += gram[base + c]! + scaled * mean[c]!;
    acc.mean[r] += sum[r]!;
  }
}
