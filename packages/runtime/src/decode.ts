/**
 * Decoding loops of an exported decoder: step by step with the key-value cache
 * (`past_key_values.*` in, `present.*` out), as transformers.js generates, and the reference it is
 * checked against, a greedy loop that runs the whole context every step with an empty cache.
 */
import type { HfModel } from '@zerolm/adapters';
import type { Rng } from '@zerolm/core';
import { cacheInputs, emptyCache, floatData, int64Tensor, presentName, type CacheInput } from './feeds';
import { openSession, ort, type Device, type Provider } from './session';

// Bound once: global lookups are slow inside Jest's vm context.
const { exp } = Math;

/** One decoder session stepping a batch of sequences forward a token at a time. */
export class CachedDecoder {
  private past: Record<string, ort.Tensor> = {};
  private batch = 0;
  private length = 0;

  private constructor(
    readonly file: string,
    private readonly session: ort.InferenceSession,
    private readonly cache: readonly CacheInput[],
    readonly provider: Provider,
    readonly fallbackReason: string | undefined,
  ) {}

  /** Opens the model's decoder file; throws when it cannot generate with its cache. */
  static async open(model: HfModel, device: Device = 'auto'): Promise<CachedDecoder> {
    const opened = await openSession(model.file, device);
    const { session } = opened;
    try {
      const cache = cacheInputs(session, model);
      for (const c of cache) {
        if (!session.outputNames.includes(presentName(c.name))) throw new Error(`${model.file} takes ${c.name} but has no output ${presentName(c.name)}: cannot generate with the cache`);
      }
      if (!session.outputNames.includes('logits')) throw new Error(`${model.file} has no "logits" output: cannot generate`);
      if (session.inputNames.includes('token_type_ids')) throw new Error(`${model.file} takes token_type_ids: not a decoder this generator can feed`);
      return new CachedDecoder(model.file, session, cache, opened.provider, opened.fallbackReason);
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  /** Bytes of key-value cache one sequence holds per token. */
  get cacheBytesPerToken(): number {
    return this.cache.reduce((sum, c) => sum + c.heads * c.headDim * (c.type === 'float16' ? 2 : 4), 0);
  }

  /** Starts `batch` new sequences with an empty cache. */
  reset(batch: number): void {
    this.batch = batch;
    this.length = 0;
    this.past = emptyCache(this.cache, batch);
  }

  /**
   * Feeds one token per sequence (`ids[b]`) at the next position and keeps the cache; returns
   * the next-token logits, row-major [batch, vocabulary], in float32.
   */
  async step(ids: BigInt64Array): Promise<{ logits: Float32Array; vocabulary: number }> {
    const { batch } = this;
    if (ids.length !== batch) throw new Error(`CachedDecoder.step: ${ids.length} tokens for a batch of ${batch} (call reset first)`);
    const position = this.length;
    const feeds: Record<string, ort.Tensor> = {
      ...this.past,
      input_ids: new ort.Tensor('int64', ids, [batch, 1]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * (position + 1)).fill(1n), [batch, position + 1]),
    };
    if (this.session.inputNames.includes('position_ids')) feeds['position_ids'] = new ort.Tensor('int64', new BigInt64Array(batch).fill(BigInt(position)), [batch, 1]);
    let outputs: ort.InferenceSession.OnnxValueMapType;
    try {
      outputs = await this.session.run(feeds);
    } catch (error) {
      throw new Error(`onnxruntime failed to generate with ${this.file}: ${(error as Error).message.split('\n')[0]}`);
    }
    const logitsTensor = outputs['logits'] as ort.Tensor;
    const logits = floatData(logitsTensor);
    if (!logits) throw new Error(`${this.file}: logits have element type ${logitsTensor.type}, not float32 or float16`);
    const dims = logitsTensor.dims.map(Number);
    const vocabulary = dims[dims.length - 1]!;
    const next: Record<string, ort.Tensor> = {};
    for (const c of this.cache) next[c.name] = outputs[presentName(c.name)] as ort.Tensor;
    this.past = next;
    this.length = position + 1;
    return { logits, vocabulary };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** A draw from softmax(logits[offset .. offset + vocabulary)) at temperature 1. */
export function sampleFromLogits(logits: Float32Array, offset: number, vocabulary: number, rng: Rng): number {
  let max = -Infinity;
  for (let i = 0; i < vocabulary; i++) {
    const v = logits[offset + i]!;
    if (v > max) max = v;
  }
  let total = 0;
  for (let i = 0; i < vocabulary; i++) total += exp(logits[offset + i]! - max);
  const target = rng.uniform() * total;
  let cumulative = 0;
  for (let i = 0; i < vocabulary; i++) {
    cumulative += exp(logits[offset + i]! - max);
    if (cumulative > target) return i;
  }
  // Rounding left the target beyond the last sum: the last token with any mass.
  for (let i = vocabulary - 1; i >= 0; i--) if (logits[offset + i]! > -Infinity) return i;
  return vocabulary - 1;
}

/** The index of the largest of logits[offset .. offset + vocabulary). */
export function argmax(logits: Float32Array, offset: number, vocabulary: number): number {
  let best = 0;
  for (let v = 1; v < vocabulary; v++) if (logits[offset + v]! > logits[offset + best]!) best = v;
  return best;
}

/**
 * Greedy decoding without the cache: the whole sequence every step, each `past_key_values.*`
 * input fed empty (`[1, kv_heads, 0, head_dim]` from the input's own dims), on the CPU. Returns
 * the new tokens (stopping after `eos`). The reference that cached generation is checked against.
 */
export async function fullContextGreedy(modelFile: string, prompt: readonly number[], maxNew: number, eos: number): Promise<number[]> {
  const { session } = await openSession(modelFile, 'cpu');
  const tokens = [...prompt];
  try {
    for (let step = 0; step < maxNew; step++) {
      const n = tokens.length;
      const feeds: Record<string, ort.Tensor> = {
        input_ids: int64Tensor(tokens, [1, n]),
        attention_mask: int64Tensor(tokens.map(() => 1), [1, n]),
      };
      if (session.inputNames.includes('position_ids')) feeds['position_ids'] = int64Tensor(tokens.map((_, i) => i), [1, n]);
      for (const meta of session.inputMetadata) {
        if (!meta.name.startsWith('past_key_values.') || !meta.isTensor) continue;
        const type = meta.type === 'float16' ? 'float16' : 'float32';
        feeds[meta.name] = new ort.Tensor(type, type === 'float16' ? new Uint16Array(0) : new Float32Array(0), [1, meta.shape[1] as number, 0, meta.shape[3] as number]);
      }
      const output = (await session.run(feeds))['logits'] as ort.Tensor;
      const logits = floatData(output);
      if (!logits) throw new Error(`${modelFile}: logits have element type ${output.type}`);
      const vocab = output.dims[2] as number;
      const best = argmax(logits, (n - 1) * vocab, vocab);
      tokens.push(best);
      if (best === eos) break;
    }
  } finally {
    await session.release();
  }
  return tokens.slice(prompt.length);
}
