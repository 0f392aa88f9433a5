/**
 * Feeds of an exported model, as transformers.js gives them: `input_ids`, `attention_mask`,
 * `token_type_ids` (zeros) and `position_ids` (0..seqLen-1) where the graph takes them, and a
 * key-value cache for every `past_key_values.*` input, shaped from the graph's own input dims.
 */
import type { HfModel } from '@zerolm/adapters';
import { float16ToFloat32Array } from '@zerolm/onnx';
import { ort } from './session';

/** A batch of equally long sequences, row-major [batch, seqLen]. */
export interface TokenBatch {
  readonly batch: number;
  readonly seqLen: number;
  readonly ids: BigInt64Array;
  /** 1 for tokens, 0 for padding. */
  readonly mask: BigInt64Array;
}

/** Key-value cache input: its element type and the [kvHeads, headDim] of its layer. */
export interface CacheInput {
  readonly name: string;
  readonly type: 'float32' | 'float16';
  readonly heads: number;
  readonly headDim: number;
}

/** Inputs the feeds here know how to fill (besides the cache). */
export const KNOWN_INPUTS: ReadonlySet<string> = new Set(['input_ids', 'attention_mask', 'token_type_ids', 'position_ids']);

/** An int64 tensor from plain numbers. */
export function int64Tensor(values: readonly number[], dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(v))), dims);
}

function tensorMetadata(session: ort.InferenceSession, name: string): ort.InferenceSession.TensorValueMetadata | undefined {
  const meta = session.inputMetadata.find((m) => m.name === name);
  return meta && meta.isTensor ? meta : undefined;
}

/** Cache dims from the graph's input shape where it states them, else from the module graph. */
export function cacheInputs(session: ort.InferenceSession, model: HfModel): CacheInput[] {
  const fromGraph = new Map<string, { heads: number; headDim: number }>();
  model.match.layers.forEach((layer, i) => {
    const attention = model.graph.layers[i]!.attention;
    for (const name of [layer.attention.pastKey, layer.attention.pastValue]) {
      if (name) fromGraph.set(name, { heads: attention.kvHeads, headDim: attention.headDim });
    }
  });
  return session.inputNames
    .filter((name) => name.startsWith('past_key_values.'))
    .map((name) => {
      const meta = tensorMetadata(session, name);
      const shape = meta?.shape ?? [];
      const known = fromGraph.get(name);
      const heads = typeof shape[1] === 'number' ? shape[1] : known?.heads;
      const headDim = typeof shape[3] === 'number' ? shape[3] : known?.headDim;
      if (heads === undefined || headDim === undefined) {
        throw new Error(`${model.file}: cannot tell the key-value heads and head size of cache input ${name}`);
      }
      const type = meta?.type ?? 'float32';
      if (type !== 'float32' && type !== 'float16') throw new Error(`${model.file}: cache input ${name} has element type ${type}, not float32 or float16`);
      return { name, type, heads, headDim };
    });
}

/** An empty key-value cache (past length 0) for `batch` sequences. */
export function emptyCache(cache: readonly CacheInput[], batch: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const c of cache) {
    const empty = c.type === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    feeds[c.name] = new ort.Tensor(c.type, empty, [batch, c.heads, 0, c.headDim]);
  }
  return feeds;
}

/** The output that carries a cache input's next value (`past_key_values.i.key` -> `present.i.key`). */
export function presentName(cacheInput: string): string {
  return cacheInput.replace(/^past_key_values\./, 'present.');
}

/** Positions 0..seqLen-1 for every sequence of the batch. */
function positions(batch: number, seqLen: number): BigInt64Array {
  const ids = new BigInt64Array(batch * seqLen);
  for (let b = 0; b < batch; b++) for (let t = 0; t < seqLen; t++) ids[b * seqLen + t] = BigInt(t);
  return ids;
}

/**
 * The feeds of a full forward pass over `input`, as transformers.js gives them: `input_ids`,
 * `attention_mask`, `token_type_ids` (zeros) and `position_ids` (0..seqLen-1) where the graph
 * takes them, and an empty key-value cache (past length 0) for every `cache` input.
 */
export function fullPassFeeds(session: ort.InferenceSession, cache: readonly CacheInput[], input: TokenBatch): Record<string, ort.Tensor> {
  const { batch, seqLen } = input;
  const dims = [batch, seqLen];
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', input.ids, dims),
    attention_mask: new ort.Tensor('int64', input.mask, dims),
  };
  const inputs = session.inputNames;
  if (inputs.includes('token_type_ids')) feeds['token_type_ids'] = new ort.Tensor('int64', new BigInt64Array(batch * seqLen), dims);
  if (inputs.includes('position_ids')) feeds['position_ids'] = new ort.Tensor('int64', positions(batch, seqLen), dims);
  return { ...feeds, ...emptyCache(cache, batch) };
}

/** A float output as float32 (float16 outputs are widened); undefined for other element types. */
export function floatData(tensor: ort.Tensor): Float32Array | undefined {
  if (tensor.type === 'float32') return tensor.data as Float32Array;
  if (tensor.type === 'float16') return float16ToFloat32Array(tensor.data as Uint16Array);
  return undefined;
}
