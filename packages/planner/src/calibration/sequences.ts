/**
 * Token sequences for calibration, made without reading any text:
 *
 * - decoders sample from the model itself: each sequence starts at `bos_token_id` and continues
 *   with tokens drawn from softmax(logits) at temperature 1, one onnxruntime step per token with
 *   the key-value cache (`past_key_values.*` in, `present.*` out). A sampled `eos_token_id` ends
 *   that sample and the next position starts a new one at BOS, as in the packed streams decoders
 *   are trained on (where BOS and EOS are the same token, the EOS itself starts the next sample);
 * - encoders have no generation head: tokens drawn uniformly from the vocabulary without its
 *   special tokens (a weaker fallback: these sequences are not the model's own distribution).
 *
 * Draws come from `Rng` streams seeded by the seed and the sequence index, so a seed gives the
 * same sequences whatever the batching. Reads only the model folder (config.json, the ONNX file,
 * and for encoders tokenizer.json's special tokens).
 */
import type { HfModel, NormalizedConfig } from '@zerolm/adapters';
import { Rng } from '@zerolm/core';
import { float16ToFloat32Array } from '@zerolm/onnx';
import * as fs from 'fs';
import * as path from 'path';
import { positionLimit } from '../compare/compare';
import { cacheInputs } from '../compare/runner';
import { openSession, ort, type Device } from '../runtime/session';

// Bound once: global lookups are slow inside Jest's vm context (see the project notes).
const { exp } = Math;

export type SequenceSource = 'self-generated' | 'uniform-vocabulary';

/** How each source makes its sequences, in words (plan.json and reports quote it). */
export const SEQUENCE_SOURCES: Readonly<Record<SequenceSource, string>> = {
  'self-generated': 'sampled from the model itself starting at its BOS token (temperature 1, key-value cache); no text is read',
  'uniform-vocabulary': 'tokens drawn uniformly from the non-special vocabulary (encoders: no generation head; a weaker fallback)',
};

export interface CalibrationSequences {
  /** Token ids, row-major `[samples, length]`. */
  readonly tokens: Int32Array;
  readonly samples: number;
  readonly length: number;
  readonly source: SequenceSource;
  readonly vocabulary: number;
  readonly bos?: number;
  readonly eos?: number;
  /** Token ids never drawn (uniform-vocabulary). */
  readonly excluded?: number;
}

export interface SequenceOptions {
  samples: number;
  length: number;
  seed: number;
  device?: Device;
}

/** The longest sequence the model reads without leaving the positions it was trained on. */
export function calibrationPositionLimit(config: NormalizedConfig): number | undefined {
  const learned = positionLimit(config);
  if (learned !== undefined) return learned;
  const trained = config.raw['max_position_embeddings'];
  return typeof trained === 'number' && trained > 0 ? trained : undefined;
}

function tokenId(config: NormalizedConfig, key: string): number | undefined {
  const value = config.raw[key];
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  // A list (several EOS tokens): the first.
  if (Array.isArray(value) && typeof value[0] === 'number') return value[0];
  return undefined;
}

function sequenceRng(seed: number, sequence: number): Rng {
  return new Rng(`calibration/${seed}/${sequence}`);
}

/** Sequences for `model`: self-generated for decoders, uniform over the vocabulary for encoders. */
export async function calibrationSequences(model: HfModel, options: SequenceOptions): Promise<CalibrationSequences> {
  return model.config.decoder ? generateSequences(model, options) : uniformSequences(model, options);
}

/** Samples `samples` sequences of `length` tokens from the decoder itself, from its BOS token. */
export async function generateSequences(model: HfModel, options: SequenceOptions): Promise<CalibrationSequences> {
  const { samples, length, seed } = options;
  const bos = tokenId(model.config, 'bos_token_id');
  if (bos === undefined) {
    throw new Error(`${path.join(model.dir, 'config.json')} has no "bos_token_id": self-generated calibration starts every sequence at the BOS token`);
  }
  const eos = tokenId(model.config, 'eos_token_id');
  const opened = await openSession(model.file, options.device ?? 'auto');
  const session = opened.session;
  try {
    const cache = cacheInputs(session, model);
    for (const c of cache) {
      const present = c.name.replace(/^past_key_values\./, 'present.');
      if (!session.outputNames.includes(present)) throw new Error(`${model.file} takes ${c.name} but has no output ${present}: cannot generate with the cache`);
    }
    if (!session.outputNames.includes('logits')) throw new Error(`${model.file} has no "logits" output: cannot generate`);
    if (session.inputNames.includes('token_type_ids')) throw new Error(`${model.file} takes token_type_ids: not a decoder this generator can feed`);
    const tokens = new Int32Array(samples * length);
    const rngs = Array.from({ length: samples }, (_, s) => sequenceRng(seed, s));
    // The cache of one batch: layers x 2 x [batch, kvHeads, length, headDim] floats, kept under ~512 MiB.
    const perSequence = cache.reduce((sum, c) => sum + c.heads * c.headDim * length * 4, 0);
    const batchSize = Math.max(1, Math.min(samples, Math.floor((512 * 2 ** 20) / Math.max(1, perSequence))));
    let vocabulary = 0;
    for (let start = 0; start < samples; start += batchSize) {
      const batch = Math.min(batchSize, samples - start);
      for (let b = 0; b < batch; b++) tokens[(start + b) * length] = bos;
      let past: Record<string, ort.Tensor> = {};
      for (const c of cache) {
        const empty = c.type === 'float16' ? new Uint16Array(0) : new Float32Array(0);
        past[c.name] = new ort.Tensor(c.type, empty, [batch, c.heads, 0, c.headDim]);
      }
      for (let t = 0; t + 1 < length; t++) {
        const ids = new BigInt64Array(batch);
        for (let b = 0; b < batch; b++) ids[b] = BigInt(tokens[(start + b) * length + t]!);
        const feeds: Record<string, ort.Tensor> = {
          ...past,
          input_ids: new ort.Tensor('int64', ids, [batch, 1]),
          attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * (t + 1)).fill(1n), [batch, t + 1]),
        };
        if (session.inputNames.includes('position_ids')) feeds['position_ids'] = new ort.Tensor('int64', new BigInt64Array(batch).fill(BigInt(t)), [batch, 1]);
        let outputs: ort.InferenceSession.OnnxValueMapType;
        try {
          outputs = await session.run(feeds);
        } catch (error) {
          throw new Error(`onnxruntime failed to generate with ${model.file}: ${(error as Error).message.split('\n')[0]}`);
        }
        const logitsTensor = outputs['logits'] as ort.Tensor;
        const logits = logitsTensor.type === 'float16' ? float16ToFloat32Array(logitsTensor.data as Uint16Array) : (logitsTensor.data as Float32Array);
        const dims = logitsTensor.dims.map(Number);
        vocabulary = dims[dims.length - 1]!;
        const stride = logits.length / batch;
        for (let b = 0; b < batch; b++) {
          const row = (start + b) * length;
          const previous = tokens[row + t]!;
          tokens[row + t + 1] =
            eos !== undefined && previous === eos && eos !== bos ? bos : sampleToken(logits, b * stride + stride - vocabulary, vocabulary, rngs[start + b]!);
        }
        const next: Record<string, ort.Tensor> = {};
        for (const c of cache) next[c.name] = outputs[c.name.replace(/^past_key_values\./, 'present.')] as ort.Tensor;
        past = next;
      }
    }
    if (vocabulary === 0) vocabulary = typeof model.config.raw['vocab_size'] === 'number' ? (model.config.raw['vocab_size'] as number) : 0;
    return { tokens, samples, length, source: 'self-generated', vocabulary, bos, ...(eos === undefined ? {} : { eos }) };
  } finally {
    await session.release();
  }
}

/** A draw from softmax(logits[offset .. offset + vocabulary)) at temperature 1. */
function sampleToken(logits: Float32Array, offset: number, vocabulary: number, rng: Rng): number {
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

/** Special token ids: tokenizer.json's special added tokens and the ids config.json names. */
export function specialTokenIds(model: HfModel): Set<number> {
  const ids = new Set<number>();
  for (const key of ['bos_token_id', 'eos_token_id', 'pad_token_id', 'cls_token_id', 'sep_token_id', 'mask_token_id', 'unk_token_id']) {
    const id = tokenId(model.config, key);
    if (id !== undefined) ids.add(id);
  }
  const file = path.join(model.dir, 'tokenizer.json');
  if (fs.existsSync(file)) {
    let parsed: { added_tokens?: { id?: unknown; special?: unknown }[] };
    try {
      parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (error) {
      throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
    }
    for (const token of parsed.added_tokens ?? []) {
      if (token.special === true && typeof token.id === 'number') ids.add(token.id);
    }
  }
  return ids;
}

/** Sequences of tokens drawn uniformly from the vocabulary without its special tokens (encoders). */
export function uniformSequences(model: HfModel, options: SequenceOptions): CalibrationSequences {
  const { samples, length, seed } = options;
  const vocabulary = model.config.raw['vocab_size'];
  if (typeof vocabulary !== 'number' || !Number.isInteger(vocabulary) || vocabulary < 1) {
    throw new Error(`${path.join(model.dir, 'config.json')} has no "vocab_size": cannot draw calibration tokens`);
  }
  const special = specialTokenIds(model);
  const allowed: number[] = [];
  for (let id = 0; id < vocabulary; id++) if (!special.has(id)) allowed.push(id);
  if (allowed.length === 0) throw new Error(`${model.dir}: every token of the vocabulary is special; nothing to draw calibration tokens from`);
  const tokens = new Int32Array(samples * length);
  for (let s = 0; s < samples; s++) {
    const rng = sequenceRng(seed, s);
    for (let t = 0; t < length; t++) tokens[s * length + t] = allowed[rng.int(allowed.length)]!;
  }
  return { tokens, samples, length, source: 'uniform-vocabulary', vocabulary, excluded: vocabulary - allowed.length };
}
