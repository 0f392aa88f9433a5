/**
 * Token sequences for calibration, from one of three sources (`calibration.source`, CLI
 * `--calibration`):
 *
 * - `self-generated` (default): the model's own samples, no text read.
 *   - Decoders sample from themselves: each sequence starts at `bos_token_id` and continues with
 *     tokens drawn from softmax(logits) at temperature 1, one onnxruntime step per token with the
 *     key-value cache (`past_key_values.*` in, `present.*` out). A sampled `eos_token_id` ends
 *     that sample and the next position starts a new one at BOS, as in the packed streams decoders
 *     are trained on (where BOS and EOS are the same token, the EOS itself starts the next sample).
 *   - Encoders with a masked-LM head (fill-mask exports, a `logits` output) sample from it by
 *     iterated masked-token resampling (`masked-lm-sampling.ts`).
 *   - Encoders without one (feature-extraction exports) cannot sample: they fall back to
 *     `uniform`, and the sequences say so (`fallback`).
 * - `text`: windows of a plain-text file the user gives, tokenized by the model's own tokenizer
 *   (`text-sequences.ts`).
 * - `uniform`: tokens drawn uniformly from the vocabulary without its special tokens (a weak
 *   baseline: these sequences are not the model's distribution).
 *
 * Draws come from `Rng` streams seeded by the seed and the sequence index, so a seed gives the
 * same sequences whatever the batching. Reads only the model folder (config.json, the ONNX file,
 * the tokenizer files) and, for `text`, the text file.
 */
import type { HfModel } from '@zerolm/adapters';
import { Rng } from '@zerolm/core';
import { CachedDecoder, sampleFromLogits, type Device } from '@zerolm/runtime';
import * as fs from 'fs';
import * as path from 'path';
import { hasMaskedLmHead, maskedLmSequences, noMaskedLmHead } from './masked-lm-sampling';
import { textSequences, type TextCalibrationDetails } from './text-sequences';

export type CalibrationSource = 'self-generated' | 'text' | 'uniform';
export const CALIBRATION_SOURCES: readonly CalibrationSource[] = ['self-generated', 'text', 'uniform'];
export const DEFAULT_CALIBRATION_SOURCE: CalibrationSource = 'self-generated';

export function checkCalibrationSource(value: string): CalibrationSource {
  if (!(CALIBRATION_SOURCES as readonly string[]).includes(value)) throw new Error(`unknown calibration source "${value}" (known: ${CALIBRATION_SOURCES.join(', ')})`);
  return value as CalibrationSource;
}

export interface CalibrationSequences {
  /** Token ids, row-major `[samples, length]`. */
  readonly tokens: Int32Array;
  readonly samples: number;
  readonly length: number;
  /** The source that made them (`uniform` also when `self-generated` fell back, see `fallback`). */
  readonly source: CalibrationSource;
  /** How self-generated sequences were sampled: next-token (decoders) or from the masked-LM head. */
  readonly sampler?: 'autoregressive' | 'masked-lm';
  /** How the sequences were made, in words (plan.json quotes it). */
  readonly description: string;
  /** Why another source than the one asked for made them. */
  readonly fallback?: string;
  readonly vocabulary: number;
  readonly bos?: number;
  readonly eos?: number;
  /** The mask token (masked-LM sampling). */
  readonly mask?: number;
  /** Token ids never drawn (uniform). */
  readonly excluded?: number;
  /** The text file read (text). */
  readonly text?: TextCalibrationDetails;
}

export interface SequenceOptions {
  samples: number;
  length: number;
  seed: number;
  /** Default `self-generated`. */
  source?: CalibrationSource;
  /** The text file of the `text` source. */
  text?: string;
  device?: Device;
  onProgress?: (done: number, total: number) => void;
}

function tokenId(config: HfModel['config'], key: string): number | undefined {
  const value = config.raw[key];
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  // A list (several EOS tokens): the first.
  if (Array.isArray(value) && typeof value[0] === 'number') return value[0];
  return undefined;
}

function sequenceRng(seed: number, sequence: number): Rng {
  return new Rng(`calibration/${seed}/${sequence}`);
}

/** Sequences for `model` from `options.source` (see the module comment). */
export async function calibrationSequences(model: HfModel, options: SequenceOptions): Promise<CalibrationSequences> {
  const source = checkCalibrationSource(options.source ?? DEFAULT_CALIBRATION_SOURCE);
  if (source !== 'text' && options.text !== undefined) throw new Error(`a calibration text (${options.text}) goes with the text source, not ${source}`);
  if (source === 'text') {
    if (options.text === undefined) throw new Error('the text calibration source needs a text file (calibration.text, --calibration-text FILE)');
    return textSequences(model, options.text, options);
  }
  if (source === 'uniform') return uniformSequences(model, options);
  if (model.config.decoder) return generateSequences(model, options);
  if (hasMaskedLmHead(model)) return maskedLmSequences(model, options);
  return { ...uniformSequences(model, options), fallback: `${noMaskedLmHead(model)}: tokens drawn uniformly from the vocabulary instead` };
}

/** Samples `samples` sequences of `length` tokens from the decoder itself, from its BOS token. */
export async function generateSequences(model: HfModel, options: SequenceOptions): Promise<CalibrationSequences> {
  const { samples, length, seed } = options;
  const bos = tokenId(model.config, 'bos_token_id');
  if (bos === undefined) {
    throw new Error(`${path.join(model.dir, 'config.json')} has no "bos_token_id": self-generated calibration starts every sequence at the BOS token`);
  }
  const eos = tokenId(model.config, 'eos_token_id');
  const decoder = await CachedDecoder.open(model, options.device ?? 'auto');
  try {
    const tokens = new Int32Array(samples * length);
    const rngs = Array.from({ length: samples }, (_, s) => sequenceRng(seed, s));
    // The cache of one batch, [batch, kvHeads, length, headDim] per layer and tensor, kept under ~512 MiB.
    const perSequence = decoder.cacheBytesPerToken * length;
    const batchSize = Math.max(1, Math.min(samples, Math.floor((512 * 2 ** 20) / Math.max(1, perSequence))));
    let vocabulary = 0;
    for (let start = 0; start < samples; start += batchSize) {
      const batch = Math.min(batchSize, samples - start);
      for (let b = 0; b < batch; b++) tokens[(start + b) * length] = bos;
      decoder.reset(batch);
      for (let t = 0; t + 1 < length; t++) {
        const ids = new BigInt64Array(batch);
        for (let b = 0; b < batch; b++) ids[b] = BigInt(tokens[(start + b) * length + t]!);
        const step = await decoder.step(ids);
        const { logits } = step;
        vocabulary = step.vocabulary;
        const stride = logits.length / batch;
        for (let b = 0; b < batch; b++) {
          const row = (start + b) * length;
          const previous = tokens[row + t]!;
          tokens[row + t + 1] =
            eos !== undefined && previous === eos && eos !== bos ? bos : sampleFromLogits(logits, b * stride + stride - vocabulary, vocabulary, rngs[start + b]!);
        }
      }
    }
    if (vocabulary === 0) vocabulary = typeof model.config.raw['vocab_size'] === 'number' ? (model.config.raw['vocab_size'] as number) : 0;
    return {
      tokens,
      samples,
      length,
      source: 'self-generated',
      sampler: 'autoregressive',
      description: 'sampled from the model itself starting at its BOS token (temperature 1, key-value cache); no text is read',
      vocabulary,
      bos,
      ...(eos === undefined ? {} : { eos }),
    };
  } finally {
    await decoder.release();
  }
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

/** Sequences of tokens drawn uniformly from the vocabulary without its special tokens. */
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
  return {
    tokens,
    samples,
    length,
    source: 'uniform',
    description: 'tokens drawn uniformly from the non-special vocabulary (not the model\'s distribution: a weak baseline)',
    vocabulary,
    excluded: vocabulary - allowed.length,
  };
}
