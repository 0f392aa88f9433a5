/**
 * Masked-LM pseudo-perplexity on held-out text: how well a fill-mask model (and its pruned
 * variants) still predicts masked words. The protocol is the one `../shared/models/kjv-bert-tiny/
 * eval.json` defines, so the unpruned model reproduces its figure (52.32):
 *
 * 1. each non-empty line of the text is tokenized without special tokens, and the ids of all
 *    lines are concatenated in order into one stream;
 * 2. candidates are the stream positions whose id is not special; one draw u = mulberry32(seed)
 *    per candidate, in stream order; the k = floor(fraction * candidates + 0.5) candidates with
 *    the smallest u are masked (ties: the earlier position);
 * 3. the stream is cut into consecutive pieces of `window` ids (the last one shorter), each run as
 *    the tokenizer's frame around it (`[CLS] piece [SEP]`; attention mask 1, token types 0) with
 *    every masked position replaced by the mask token;
 * 4. cross-entropy of the logits at each masked position against the original id; the
 *    pseudo-perplexity is exp(mean cross-entropy over all masked positions).
 *
 * The masking is made once from the reference's tokenizer (`maskedLmText`) and every model is
 * scored on the same pieces (`maskedLmPerplexity`), through onnxruntime on the folder's fp32
 * `onnx/model.onnx` and its `logits` output.
 */
import { floatData, fullPassFeeds, loadTokenizer, openSession, specialFrame, type Device, type ort } from '@zerolm/runtime';
import * as fs from 'fs';
import * as path from 'path';
import { readSampleText } from './text';

/** The generator of eval.json (`mulberry32`, as its code string defines it). */
export function mulberry32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface MaskedLmOptions {
  /** Seed of mulberry32 (default 0). */
  seed?: number;
  /** Share of the non-special tokens masked (default 0.15). */
  fraction?: number;
  /** Ids per piece between the frame's special tokens (default 62: 64-token sequences for BERT). */
  window?: number;
}

/** The masked text every model is scored on. */
export interface MaskedLmText {
  readonly file: string;
  /** Inputs of each piece, framed, masked positions replaced by the mask token. */
  readonly pieces: readonly Int32Array[];
  /** Per piece: positions (in the framed input) that are masked, and the ids they hide. */
  readonly masked: readonly { positions: Int32Array; targets: Int32Array }[];
  /** Tokens of the stream. */
  readonly streamTokens: number;
  /** Non-special tokens of the stream. */
  readonly candidates: number;
  /** Masked tokens (k). */
  readonly tokens: number;
  readonly seed: number;
  readonly fraction: number;
  readonly window: number;
}

export interface MaskedLmResult {
  /** exp(mean cross-entropy at the masked positions). */
  readonly perplexity: number;
  readonly meanCrossEntropy: number;
  /** Masked positions scored. */
  readonly tokens: number;
}

/** Tokenizes and masks `textFile` with the tokenizer of `modelDir` (see the module comment). */
export async function maskedLmText(modelDir: string, textFile: string, options: MaskedLmOptions = {}): Promise<MaskedLmText> {
  const seed = options.seed ?? 0;
  const fraction = options.fraction ?? 0.15;
  const window = options.window ?? 62;
  if (!(fraction > 0 && fraction < 1)) throw new Error(`the masked fraction must be in (0, 1) (got ${fraction})`);
  if (!Number.isInteger(window) || window < 1) throw new Error(`the masked-LM window must be a whole number >= 1 (got ${window})`);
  const text = readSampleText(textFile);
  const tokenizer = await loadTokenizer(modelDir);
  const mask = tokenizer.maskTokenId;
  if (mask === undefined) throw new Error(`the tokenizer of ${modelDir} has no mask token: no masked-LM evaluation`);
  const frame = specialFrame(tokenizer, modelDir);
  const special = new Set(tokenizer.specialTokenIds);
  const stream = Int32Array.from(text.lines.flatMap((line) => tokenizer.encode(line, false)));
  const candidates: number[] = [];
  for (let i = 0; i < stream.length; i++) if (!special.has(stream[i]!)) candidates.push(i);
  const draw = mulberry32(seed);
  const draws = candidates.map((position) => ({ position, u: draw() }));
  const k = Math.floor(fraction * candidates.length + 0.5);
  const isMasked = new Uint8Array(stream.length);
  draws.sort((a, b) => a.u - b.u || a.position - b.position);
  for (let i = 0; i < k; i++) isMasked[draws[i]!.position] = 1;
  const pieces: Int32Array[] = [];
  const masked: { positions: Int32Array; targets: Int32Array }[] = [];
  for (let start = 0; start < stream.length; start += window) {
    const ids = stream.subarray(start, Math.min(stream.length, start + window));
    const input = new Int32Array(frame.prefix.length + ids.length + frame.suffix.length);
    input.set(frame.prefix, 0);
    input.set(ids, frame.prefix.length);
    input.set(frame.suffix, frame.prefix.length + ids.length);
    const positions: number[] = [];
    const targets: number[] = [];
    ids.forEach((id, i) => {
      if (!isMasked[start + i]) return;
      positions.push(frame.prefix.length + i);
      targets.push(id);
      input[frame.prefix.length + i] = mask;
    });
    pieces.push(input);
    masked.push({ positions: Int32Array.from(positions), targets: Int32Array.from(targets) });
  }
  return { file: text.file, pieces, masked, streamTokens: stream.length, candidates: candidates.length, tokens: k, seed, fraction, window };
}

/** The pseudo-perplexity of the fill-mask model in `modelDir` on `text` (fp32 `onnx/model.onnx`). */
export async function maskedLmPerplexity(modelDir: string, text: MaskedLmText, options: { device?: Device; batch?: number } = {}): Promise<MaskedLmResult> {
  const file = path.join(modelDir, 'onnx', 'model.onnx');
  if (!fs.existsSync(file)) throw new Error(`no onnx/model.onnx in ${modelDir}`);
  let session: ort.InferenceSession;
  try {
    session = (await openSession(file, options.device ?? 'auto')).session;
  } catch (error) {
    throw new Error(`onnxruntime cannot load ${file}: ${(error as Error).message.split('\n')[0]}`);
  }
  try {
    if (!session.outputNames.includes('logits')) throw new Error(`${file} has no "logits" output: not a fill-mask (masked-LM) export`);
    const batchSize = options.batch ?? 32;
    let sum = 0;
    let count = 0;
    // Pieces of one length run together (only the last piece is shorter).
    for (let start = 0; start < text.pieces.length; ) {
      const length = text.pieces[start]!.length;
      let end = start;
      while (end < text.pieces.length && end - start < batchSize && text.pieces[end]!.length === length) end++;
      const batch = end - start;
      const ids = new BigInt64Array(batch * length);
      for (let b = 0; b < batch; b++) text.pieces[start + b]!.forEach((id, t) => (ids[b * length + t] = BigInt(id)));
      let output: ort.Tensor | undefined;
      try {
        output = (await session.run(fullPassFeeds(session, [], { batch, seqLen: length, ids, mask: new BigInt64Array(batch * length).fill(1n) }), ['logits']))['logits'];
      } catch (error) {
        throw new Error(`onnxruntime failed to run ${file}: ${(error as Error).message.split('\n')[0]}`);
      }
      const logits = output ? floatData(output) : undefined;
      const vocabulary = Number(output?.dims[2] ?? 0);
      if (!logits || logits.length !== batch * length * vocabulary) throw new Error(`${file}: "logits" is not a float [${batch}, ${length}, vocabulary] tensor`);
      for (let b = 0; b < batch; b++) {
        const { positions, targets } = text.masked[start + b]!;
        positions.forEach((position, i) => {
          const offset = (b * length + position) * vocabulary;
          let max = -Infinity;
          for (let v = 0; v < vocabulary; v++) max = Math.max(max, logits[offset + v]!);
          let total = 0;
          for (let v = 0; v < vocabulary; v++) total += Math.exp(logits[offset + v]! - max);
          sum += max + Math.log(total) - logits[offset + targets[i]!]!;
          count++;
        });
      }
      start = end;
    }
    const meanCrossEntropy = sum / count;
    return { perplexity: Math.exp(meanCrossEntropy), meanCrossEntropy, tokens: count };
  } finally {
    await session.release();
  }
}
