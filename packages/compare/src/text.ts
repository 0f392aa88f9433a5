/**
 * The text sample fidelity is measured on, and how it is cut into model inputs.
 *
 * Each non-empty line of the file is one text, encoded by the tokenizer with its special tokens
 * (for the BERT-style tokenizers of this project: `[CLS] words [SEP]`).
 * - Decoders read the concatenation of all encoded lines as one token stream, cut into windows
 *   of `seqLen` inputs predicting the next `seqLen` tokens: window k feeds tokens
 *   [k*seqLen, (k+1)*seqLen) and is scored on tokens [k*seqLen + 1, (k+1)*seqLen], for every k
 *   whose last target exists (a final partial window is dropped). This is the PyTorch loop
 *   `for i in range(0, len(ids) - seqLen, seqLen): x, y = ids[i:i+seqLen], ids[i+1:i+seqLen+1]`.
 * - Encoders read each line as one sequence, cut to its first `seqLen` tokens.
 */
import { existsSync, readFileSync, statSync } from 'fs';
import * as path from 'path';

/**
 * The default sample, written for this project (see assets/README.md). Resolved from this
 * module's folder: `src/compare/` under ts-jest and `dist/compare/` after the build both sit two
 * levels below the package root.
 */
export const BUNDLED_TEXT = path.join(__dirname, '../assets/sample-text.txt');

export interface SampleText {
  /** The file read. */
  readonly file: string;
  /** Its non-empty lines, trimmed. */
  readonly lines: readonly string[];
}

export function readSampleText(file: string = BUNDLED_TEXT): SampleText {
  if (!existsSync(file)) throw new Error(`text file ${file} does not exist`);
  if (!statSync(file).isFile()) throw new Error(`text file ${file} is not a file`);
  const lines = readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  if (lines.length === 0) throw new Error(`text file ${file} holds no text`);
  return { file, lines };
}

/** Next-token windows over one token stream (see the module comment). */
export class TokenWindows {
  readonly stream: Int32Array;
  readonly seqLen: number;
  /** How many windows are evaluated (all full windows, or fewer when capped). */
  readonly count: number;

  constructor(lines: readonly (readonly number[])[], seqLen: number, maxWindows = Infinity) {
    let total = 0;
    for (const line of lines) total += line.length;
    this.stream = new Int32Array(total);
    let offset = 0;
    for (const line of lines) {
      this.stream.set(line, offset);
      offset += line.length;
    }
    this.seqLen = seqLen;
    const full = total > 0 ? Math.floor((total - 1) / seqLen) : 0;
    if (full === 0) {
      throw new Error(`the text holds ${total} tokens: one window of --seq-len ${seqLen} needs ${seqLen + 1} (inputs plus the next token)`);
    }
    this.count = Math.min(full, maxWindows);
  }

  /** Inputs of window k. */
  inputs(k: number): Int32Array {
    return this.stream.subarray(k * this.seqLen, (k + 1) * this.seqLen);
  }

  /** The tokens window k is scored on: its inputs shifted by one. */
  targets(k: number): Int32Array {
    return this.stream.subarray(k * this.seqLen + 1, (k + 1) * this.seqLen + 1);
  }

  /** Scored positions over all evaluated windows. */
  get positions(): number {
    return this.count * this.seqLen;
  }
}

/** Encoder sequences: each encoded line cut to `seqLen` tokens. */
export function encoderSequences(lines: readonly (readonly number[])[], seqLen: number, maxSequences = Infinity): Int32Array[] {
  return lines
    .filter((line) => line.length > 0)
    .slice(0, maxSequences)
    .map((line) => Int32Array.from(line.slice(0, seqLen)));
}
