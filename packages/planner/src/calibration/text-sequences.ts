/**
 * Calibration sequences cut from a plain-text file the user gives (`calibration: { source:
 * 'text', text: FILE }`, CLI `--calibration-text FILE`): the peers' way (FLAP, Wanda, SparseGPT
 * calibrate on windows of real text), for users who want the pruned model to keep their domain.
 *
 * Each non-empty line is one document, tokenized by the model's own tokenizer through
 * transformers.js (`loadTokenizer`), and the documents are concatenated into one token stream as
 * the model reads text:
 * - decoders: every line with its special tokens (as `zerolm compare` evaluates them), windows of
 *   T tokens of the stream;
 * - encoders: the lines without special tokens, windows of T - 2 (for BERT's frame) tokens, each
 *   run between the tokenizer's own prefix and suffix (`[CLS] ... [SEP]`), as the masked-LM
 *   evaluation of `../shared/models/kjv-bert-tiny/eval.json` runs its pieces.
 * The stream is cut into consecutive windows, and S of them are chosen at random without
 * replacement (seeded; the first k chosen do not depend on S), so no token is used twice.
 *
 * Empty, binary (a NUL byte or bytes that are not UTF-8) and too-short files (fewer tokens than
 * the S sequences need) are refused with an error that names the file.
 */
import type { HfModel } from '@zerolm/adapters';
import { Rng } from '@zerolm/core';
import { loadTokenizer, specialFrame, type SpecialFrame } from '@zerolm/runtime';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { CalibrationSequences, SequenceOptions } from './sequences';

/** What a text calibration read (plan.json records it). */
export interface TextCalibrationDetails {
  /** The file, as an absolute path. */
  file: string;
  sha256: string;
  /** Non-empty lines (documents) read. */
  lines: number;
  /** Tokens of the whole stream (without the frame's special tokens for encoders). */
  fileTokens: number;
  /** Tokens of the text inside the calibration sequences (S x window). */
  tokensUsed: number;
}

export interface CalibrationText {
  file: string;
  sha256: string;
  lines: string[];
}

/** Reads a calibration text file: UTF-8 text with at least one non-empty line. */
export function readCalibrationText(file: string): CalibrationText {
  const where = `calibration text ${file}`;
  if (!fs.existsSync(file)) throw new Error(`${where} does not exist`);
  if (!fs.statSync(file).isFile()) throw new Error(`${where} is not a file`);
  const bytes = fs.readFileSync(file);
  if (bytes.length === 0) throw new Error(`${where} is empty`);
  if (bytes.includes(0)) throw new Error(`${where} is binary (it holds NUL bytes), not plain text`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${where} is not UTF-8 text`);
  }
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  if (lines.length === 0) throw new Error(`${where} holds no text (only blank lines)`);
  return { file: path.resolve(file), sha256: createHash('sha256').update(bytes).digest('hex'), lines };
}

/** S windows of the text's token stream (see the module comment). */
export async function textSequences(model: HfModel, file: string, options: SequenceOptions): Promise<CalibrationSequences> {
  const { samples, length, seed } = options;
  const text = readCalibrationText(file);
  const tokenizer = await loadTokenizer(model.dir);
  const vocabulary = model.config.raw['vocab_size'];
  if (typeof vocabulary !== 'number' || !Number.isInteger(vocabulary) || vocabulary < 1) {
    throw new Error(`${path.join(model.dir, 'config.json')} has no "vocab_size": cannot check the calibration text's token ids`);
  }
  const decoder = model.config.decoder;
  const frame: SpecialFrame = decoder ? { prefix: [], suffix: [] } : specialFrame(tokenizer, model.dir);
  const window = length - frame.prefix.length - frame.suffix.length;
  if (window < 1) throw new Error(`calibration sequences of ${length} tokens leave no room for text inside the tokenizer's special tokens`);
  const encoded = text.lines.map((line) => tokenizer.encode(line, decoder));
  let total = 0;
  for (const ids of encoded) total += ids.length;
  const stream = new Int32Array(total);
  let offset = 0;
  for (const ids of encoded) {
    for (const id of ids) {
      if (!(id >= 0 && id < vocabulary)) throw new Error(`the tokenizer of ${model.dir} gives id ${id} for calibration text ${file}, outside the model's vocabulary of ${vocabulary}`);
      stream[offset++] = id;
    }
  }
  const slots = Math.floor(total / window);
  if (slots < samples) {
    throw new Error(
      `calibration text ${file} is too short: ${total} tokens, and ${samples} sequences need ${samples * window} ` +
        `(${samples} x ${window}); give a longer file or fewer samples / a shorter length`,
    );
  }
  // Partial Fisher-Yates over the window slots: the first k picks do not depend on `samples`.
  const rng = new Rng(`calibration/text/${seed}`);
  const order = Int32Array.from({ length: slots }, (_, i) => i);
  const tokens = new Int32Array(samples * length);
  for (let s = 0; s < samples; s++) {
    const j = s + rng.int(slots - s);
    [order[s], order[j]] = [order[j]!, order[s]!];
    const row = s * length;
    tokens.set(frame.prefix, row);
    tokens.set(stream.subarray(order[s]! * window, (order[s]! + 1) * window), row + frame.prefix.length);
    tokens.set(frame.suffix, row + frame.prefix.length + window);
  }
  const details: TextCalibrationDetails = { file: text.file, sha256: text.sha256, lines: text.lines.length, fileTokens: total, tokensUsed: samples * window };
  return {
    tokens,
    samples,
    length,
    source: 'text',
    description: decoder
      ? `windows of ${length} tokens of the text's token stream (each line with its special tokens), chosen at random (seeded)`
      : `windows of ${window} tokens of the text's token stream (lines without special tokens), each between [${frame.prefix.join(', ')}] and [${frame.suffix.join(', ')}], chosen at random (seeded)`,
    vocabulary,
    text: details,
  };
}
