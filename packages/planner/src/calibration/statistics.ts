/**
 * The statistics pass, one layer at a time (as SparseGPT, Wanda and FLAP calibrate): the
 * calibration tokens go through the embeddings once, and the hidden states are kept (S x T x
 * width floats); then for each layer a session on that layer alone (`layerPiece`: its weights
 * only) reads them, and gives the layer's output, which moves on to the next layer, and per layer
 * the second moment E[h h^T] and the mean E[h] of the input of the FFN's `down` multiply (the
 * hidden activations) and of the attention's `o` multiply (the concatenated per-head context),
 * over every position of the calibration sequences. Memory is one layer's weights, the hidden
 * states and that layer's moments; the moments of all layers are kept in memory or, past
 * `maxBytes`, in a temporary folder (`MomentsStore`).
 *
 * The hidden states move through the unpruned layers: which units each layer keeps is chosen by
 * the search after every layer is ranked, so the statistics that rank them, and that the
 * correction refits on, are those of the model as it is.
 *
 * The moments are reduced inside onnxruntime per batch of about 1024 rows: the sum of x and the
 * sum of (x - m)(x - m)^T about the batch mean m (float32, accurate to the features' spread);
 * batches are combined in float64 as E[x x^T] = sum over batches of (G + n m m^T) / N.
 */
import type { HfModel } from '@zerolm/adapters';
import { cacheInputs, fullPassFeeds, ort, type Device, type TokenBatch } from '@zerolm/runtime';
import { performance } from 'perf_hooks';
import { addMomentOutputs, openEdited } from './graph-copy';
import { embeddingPiece, layerPiece } from './layer-graphs';
import { MomentsStore } from './moments-store';

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
  /** Bytes of float64 moments kept in memory for all layers; past it they go to a temporary folder (default 512 MiB). */
  maxBytes?: number;
  /** Rows (tokens) per onnxruntime run (default 1024). */
  rowsPerBatch?: number;
  /** After each layer (the embeddings count as layer 0 of `layers + 1`). */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_STATISTICS_BYTES = 512 * 2 ** 20;

/** What the statistics pass did, for the calibration summary. */
export interface StatisticsRun {
  /** Forward passes over the calibration tokens (one: layer by layer). */
  passes: number;
  /** Where the moments are kept. */
  storage: 'memory' | 'disk';
  /** The provider that ran the layers, and why not CUDA. */
  provider: string;
  providerReason?: string;
  timings: { embeddingsMs: number; layersMs: number };
}

interface Accumulator {
  dim: number;
  gram: string;
  sum: string;
  second: Float64Array;
  mean: Float64Array;
}

/** Float64 bytes of all layers' moments. */
export function statisticsBytes(model: HfModel): number {
  return model.graph.layers.reduce((sum, layer) => sum + MomentsStore.layerBytes(layer.ffn.width, layer.attention.heads * layer.attention.headDim), 0);
}

/** Sequences `start .. start + count` of `tokens` as a batch with no padding. */
function tokenBatch(tokens: Int32Array, start: number, count: number, length: number): TokenBatch {
  const ids = new BigInt64Array(count * length);
  for (let i = 0; i < ids.length; i++) ids[i] = BigInt(tokens[start * length + i]!);
  return { batch: count, seqLen: length, ids, mask: new BigInt64Array(count * length).fill(1n) };
}

/** The feeds a piece's session takes, of those a full pass gives, plus `extra`. */
function pieceFeeds(session: ort.InferenceSession, model: HfModel, tokens: TokenBatch, extra: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  const all = { ...fullPassFeeds(session, cacheInputs(session, model), tokens), ...extra };
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    const tensor = all[name];
    if (!tensor) throw new Error(`internal: no feed for input ${name} of a calibration piece of ${model.file}`);
    feeds[name] = tensor;
  }
  return feeds;
}

async function run(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches: string[], model: HfModel, what: string) {
  try {
    return await session.run(feeds, fetches);
  } catch (error) {
    throw new Error(`onnxruntime failed on the calibration pass of ${model.file} (${what}): ${(error as Error).message.split('\n')[0]}`);
  }
}

/**
 * The moments of every layer of `model` over `tokens` (`[samples, length]`, row-major), layer by
 * layer (see the module comment). `layers` reads them wherever the store keeps them; `release()`
 * the store when done with them.
 */
export async function collectMoments(
  model: HfModel,
  tokens: Int32Array,
  samples: number,
  length: number,
  options: StatisticsOptions = {},
): Promise<{ layers: readonly LayerMoments[]; store: MomentsStore } & StatisticsRun> {
  const device = options.device ?? 'auto';
  const perRun = Math.max(1, Math.min(samples, Math.floor((options.rowsPerBatch ?? 1024) / length)));
  const starts: number[] = [];
  for (let start = 0; start < samples; start += perRun) starts.push(start);
  const batches = starts.map((start) => tokenBatch(tokens, start, Math.min(perRun, samples - start), length));
  const total = model.graph.layers.length + 1;
  const store = new MomentsStore(model.graph.layers.length, statisticsBytes(model) > (options.maxBytes ?? DEFAULT_STATISTICS_BYTES));
  let provider = 'cpu';
  let providerReason: string | undefined;
  try {
    // The embeddings: hidden states [samples, length, width], kept for the whole pass, in the
    // graph's own activation type (float16 in fp16 and q4f16 files).
    const embeddingsStarted = performance.now();
    const residual = model.match.layers[0]!.input;
    let hidden: HiddenStates | undefined;
    let width = 0;
    {
      const opened = await openEdited(embeddingPiece(model), device);
      provider = opened.provider;
      providerReason = opened.fallbackReason;
      try {
        for (const [k, batch] of batches.entries()) {
          const out = (await run(opened.session, pieceFeeds(opened.session, model, batch, {}), [residual], model, 'embeddings'))[residual]!;
          const data = activations(out, residual);
          if (!hidden) {
            width = data.length / (batch.batch * length);
            hidden = { type: out.type as HiddenStates['type'], data: out.type === 'float16' ? new Uint16Array(samples * length * width) : new Float32Array(samples * length * width) };
          }
          hidden.data.set(data, starts[k]! * length * width);
        }
      } finally {
        await opened.release();
      }
    }
    const embeddingsMs = performance.now() - embeddingsStarted;
    options.onProgress?.(1, total);

    const layersStarted = performance.now();
    let next: HiddenStates = { type: hidden!.type, data: hidden!.type === 'float16' ? new Uint16Array(hidden!.data.length) : new Float32Array(hidden!.data.length) };
    for (const [i, match] of model.match.layers.entries()) {
      const layer = model.graph.layers[i]!;
      const last = i === model.match.layers.length - 1;
      const downInput = match.ffn.down.node.input[0]!;
      const oInput = match.attention.o.node.input[0]!;
      const edit = layerPiece(model, i, width, last ? [downInput, oInput] : [match.output, downInput, oInput]);
      // Only the moments and the residual output leave the session.
      edit.graph.output = last ? [] : edit.graph.output.slice(0, 1);
      const make = (tensor: string, dim: number, kind: string): Accumulator => ({
        dim,
        ...addMomentOutputs(edit, tensor, dim, `zerolm/calibration/${i}/${kind}`),
        second: new Float64Array(dim * dim),
        mean: new Float64Array(dim),
      });
      const ffn = make(downInput, layer.ffn.width, 'ffn');
      const attention = make(oInput, layer.attention.heads * layer.attention.headDim, 'attention');
      const fetches = [...(last ? [] : [match.output]), ffn.gram, ffn.sum, attention.gram, attention.sum];
      const opened = await openEdited(edit, device);
      try {
        for (const [k, batch] of batches.entries()) {
          const offset = starts[k]! * length * width;
          const count = batch.batch * length * width;
          const input = new ort.Tensor(hidden!.type, hidden!.data.subarray(offset, offset + count), [batch.batch, length, width]);
          const outputs = await run(opened.session, pieceFeeds(opened.session, model, batch, { [match.input]: input }), fetches, model, `layer ${i}`);
          if (!last) next.data.set(activations(outputs[match.output], match.output, count), offset);
          const rows = batch.batch * length;
          for (const acc of [ffn, attention]) addBatch(acc, values(outputs[acc.gram], acc.gram, acc.dim * acc.dim), values(outputs[acc.sum], acc.sum, acc.dim), rows);
        }
      } finally {
        await opened.release();
      }
      store.put({ index: i, ffn: finish(ffn, samples * length), attention: finish(attention, samples * length) });
      [hidden, next] = [next, hidden!];
      options.onProgress?.(i + 2, total);
    }
    const layersMs = performance.now() - layersStarted;
    return {
      layers: store.layers,
      store,
      passes: 1,
      storage: store.onDisk ? 'disk' : 'memory',
      provider,
      ...(providerReason === undefined ? {} : { providerReason }),
      timings: { embeddingsMs, layersMs },
    };
  } catch (error) {
    store.release();
    throw error;
  }
}

/** The accumulated sums as moments over `count` rows (made exactly symmetric). */
function finish(acc: Accumulator, count: number): Moments {
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
}

/** Hidden states between layers, as the graph carries them. */
interface HiddenStates {
  type: 'float32' | 'float16';
  data: Float32Array | Uint16Array;
}

/** A residual-stream tensor's data (float32, or float16 as its raw bits). */
function activations(tensor: ort.Tensor | undefined, name: string, length?: number): Float32Array | Uint16Array {
  if (tensor?.type === 'float16') {
    const data = tensor.data as Uint16Array;
    if (length !== undefined && data.length !== length) throw new Error(`internal: calibration output ${name} has ${data.length} values, expected ${length}`);
    return data;
  }
  return values(tensor, name, length);
}

function values(tensor: ort.Tensor | undefined, name: string, length?: number): Float32Array {
  if (!tensor || tensor.type !== 'float32') throw new Error(`internal: calibration output ${name} is missing or not float32`);
  const data = tensor.data as Float32Array;
  if (length !== undefined && data.length !== length) throw new Error(`internal: calibration output ${name} has ${data.length} values, expected ${length}`);
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
