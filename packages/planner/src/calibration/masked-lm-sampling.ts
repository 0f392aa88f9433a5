/**
 * Data-free calibration sequences for masked-language models: samples drawn from the model's own
 * MLM head by iterated masked-token resampling (Gibbs-style sampling, Wang & Cho 2019, "BERT has a
 * Mouth, and It Must Speak"; nyu-dl/bert-gen's `parallel_sequential_generation`). No text is read.
 *
 * Every chain starts as `[CLS] [MASK] ... [MASK] [SEP]` (the tokenizer's own frame around the
 * T - 2 content positions). A sweep visits the content positions in a fresh random order, in
 * chunks of `maskFraction` of them (15%, the masking rate BERT was trained at, so its conditionals
 * see the context density they were trained on): each chunk is set to `[MASK]`, the model runs
 * once, and every masked position is redrawn from softmax(logits / temperature). The first sweep
 * fills the all-mask chain in that random order; `sweeps` more resample it. As in bert-gen, the
 * first half of the steps draws from the full distribution (burn-in) and the second half from its
 * `topK` most likely tokens. The mask and padding tokens are never drawn.
 *
 * The chain is a heuristic generator, not an exact sampler of a joint distribution (the masked
 * conditionals need not be consistent: Goyal et al. 2021): what matters here is that the
 * sequences are the model's own, as self-generated sequences are for decoders.
 *
 * Draws come from one `Rng` stream per chain (seeded by the seed and the chain index), so a seed
 * gives the same sequences whatever the batching.
 */
import type { HfModel } from '@zerolm/adapters';
import { Rng } from '@zerolm/core';
import { floatData, fullPassFeeds, loadTokenizer, openSession, specialFrame, type ort } from '@zerolm/runtime';
import type { CalibrationSequences, SequenceOptions } from './sequences';

export interface GibbsOptions {
  /** Resampling sweeps after the filling sweep (default 8). */
  sweeps?: number;
  /** Share of the content positions masked and redrawn per model run (default 0.15). */
  maskFraction?: number;
  /** Draws of the second half of the steps come from this many most likely tokens (default 100). */
  topK?: number;
  temperature?: number;
}

export const GIBBS_DEFAULTS: Readonly<Required<GibbsOptions>> = { sweeps: 8, maskFraction: 0.15, topK: 100, temperature: 1 };

/** Logits elements per onnxruntime run (chains are batched under this). */
const LOGITS_PER_RUN = 8 * 2 ** 20;

/** Whether an encoder export has a masked-LM head: a `logits` output over the vocabulary. */
export function hasMaskedLmHead(model: HfModel): boolean {
  return !model.config.decoder && (model.onnx.model.graph?.output ?? []).some((o) => o.name === 'logits');
}

/**
 * One draw from softmax(logits[offset .. offset + vocabulary) / temperature) without the
 * `excluded` ids; with `topK` > 0, only from the `topK` largest logits.
 */
export function drawToken(logits: Float32Array, offset: number, vocabulary: number, excluded: ReadonlySet<number>, rng: Rng, temperature: number, topK: number, scratch: Float64Array): number {
  let max = -Infinity;
  for (let i = 0; i < vocabulary; i++) {
    const v = excluded.has(i) ? -Infinity : logits[offset + i]! / temperature;
    scratch[i] = v;
    if (v > max) max = v;
  }
  let floor = -Infinity;
  if (topK > 0 && topK < vocabulary) floor = kthLargest(scratch, vocabulary, topK);
  let total = 0;
  for (let i = 0; i < vocabulary; i++) {
    const v = scratch[i]!;
    scratch[i] = v >= floor && v > -Infinity ? Math.exp(v - max) : 0;
    total += scratch[i]!;
  }
  const target = rng.uniform() * total;
  let cumulative = 0;
  let last = -1;
  for (let i = 0; i < vocabulary; i++) {
    if (scratch[i]! === 0) continue;
    cumulative += scratch[i]!;
    last = i;
    if (cumulative > target) return i;
  }
  return last;
}

/** The k-th largest of values[0 .. n) (quickselect on a copy). */
function kthLargest(values: Float64Array, n: number, k: number): number {
  const a = values.slice(0, n);
  let lo = 0;
  let hi = n - 1;
  const want = k - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        [a[i], a[j]] = [a[j]!, a[i]!];
        i++;
        j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else break;
  }
  return a[want]!;
}

function checked(value: number, what: string, ok: (v: number) => boolean): number {
  if (!ok(value)) throw new Error(`masked-LM sampling: ${what} is ${value}`);
  return value;
}

/** S chains of T tokens sampled from the MLM head of `model` (see the module comment). */
export async function maskedLmSequences(model: HfModel, options: SequenceOptions & { gibbs?: GibbsOptions }): Promise<CalibrationSequences> {
  const { samples, length, seed } = options;
  const settings = { ...GIBBS_DEFAULTS, ...options.gibbs };
  checked(settings.sweeps, 'sweeps', (v) => Number.isInteger(v) && v >= 0);
  checked(settings.maskFraction, 'maskFraction', (v) => v > 0 && v <= 1);
  checked(settings.topK, 'topK', (v) => Number.isInteger(v) && v >= 0);
  checked(settings.temperature, 'temperature', (v) => v > 0);
  const tokenizer = await loadTokenizer(model.dir);
  const mask = tokenizer.maskTokenId;
  if (mask === undefined) throw new Error(`the tokenizer of ${model.dir} has no mask token: masked-LM sampling needs one`);
  const frame = specialFrame(tokenizer, model.dir);
  const content = length - frame.prefix.length - frame.suffix.length;
  if (content < 1) throw new Error(`calibration sequences of ${length} tokens leave no room inside the tokenizer's special tokens`);
  const excluded = new Set<number>([mask, tokenizer.padTokenId]);
  const perStep = Math.max(1, Math.round(settings.maskFraction * content));
  const chunks = Math.ceil(content / perStep);
  const steps = (settings.sweeps + 1) * chunks;

  let opened: Awaited<ReturnType<typeof openSession>>;
  try {
    opened = await openSession(model.file, options.device ?? 'auto');
  } catch (error) {
    throw new Error(`onnxruntime cannot load ${model.file}: ${(error as Error).message.split('\n')[0]}`);
  }
  const { session } = opened;
  try {
    if (!session.outputNames.includes('logits')) throw new Error(`${model.file} has no "logits" output: masked-LM sampling needs the fill-mask head`);
    const tokens = new Int32Array(samples * length);
    const rngs = Array.from({ length: samples }, (_, s) => new Rng(`calibration/masked-lm/${seed}/${s}`));
    let vocabulary = 0;
    let batchSize = samples;
    const vocabGuess = model.config.raw['vocab_size'];
    if (typeof vocabGuess === 'number' && vocabGuess > 0) batchSize = Math.max(1, Math.min(samples, Math.floor(LOGITS_PER_RUN / (length * vocabGuess))));
    for (let start = 0; start < samples; start += batchSize) {
      const batch = Math.min(batchSize, samples - start);
      for (let b = 0; b < batch; b++) {
        const row = (start + b) * length;
        tokens.set(frame.prefix, row);
        tokens.fill(mask, row + frame.prefix.length, row + frame.prefix.length + content);
        tokens.set(frame.suffix, row + frame.prefix.length + content);
      }
      const orders = Array.from({ length: batch }, () => new Int32Array(content));
      const attention = new BigInt64Array(batch * length).fill(1n);
      let scratch = new Float64Array(0);
      for (let step = 0; step < steps; step++) {
        const chunk = step % chunks;
        if (chunk === 0) {
          // A fresh visiting order per chain and sweep.
          orders.forEach((order, b) => {
            const rng = rngs[start + b]!;
            for (let i = 0; i < content; i++) order[i] = i;
            for (let i = content - 1; i > 0; i--) {
              const j = rng.int(i + 1);
              [order[i], order[j]] = [order[j]!, order[i]!];
            }
          });
        }
        const from = chunk * perStep;
        const to = Math.min(content, from + perStep);
        for (let b = 0; b < batch; b++) {
          const row = (start + b) * length + frame.prefix.length;
          for (let i = from; i < to; i++) tokens[row + orders[b]![i]!] = mask;
        }
        const ids = BigInt64Array.from(tokens.subarray(start * length, (start + batch) * length), (v) => BigInt(v));
        let logits: ort.Tensor | undefined;
        try {
          logits = (await session.run(fullPassFeeds(session, [], { batch, seqLen: length, ids, mask: attention }), ['logits']))['logits'];
        } catch (error) {
          throw new Error(`onnxruntime failed on masked-LM sampling with ${model.file}: ${(error as Error).message.split('\n')[0]}`);
        }
        const data = logits ? floatData(logits) : undefined;
        const dims = logits?.dims.map(Number) ?? [];
        if (!data || dims.length !== 3 || dims[0] !== batch || dims[1] !== length) {
          throw new Error(`${model.file}: output "logits" has shape [${dims.join(', ')}], expected [${batch}, ${length}, vocabulary] in float`);
        }
        vocabulary = dims[2]!;
        if (scratch.length < vocabulary) scratch = new Float64Array(vocabulary);
        const topK = step < steps / 2 ? 0 : settings.topK;
        for (let b = 0; b < batch; b++) {
          const row = (start + b) * length + frame.prefix.length;
          for (let i = from; i < to; i++) {
            const position = orders[b]![i]!;
            const offset = (b * length + frame.prefix.length + position) * vocabulary;
            tokens[row + position] = drawToken(data, offset, vocabulary, excluded, rngs[start + b]!, settings.temperature, topK, scratch);
          }
        }
        options.onProgress?.(step + 1 + (start / batchSize) * steps, Math.ceil(samples / batchSize) * steps);
      }
    }
    return {
      tokens,
      samples,
      length,
      source: 'self-generated',
      sampler: 'masked-lm',
      description:
        `sampled from the model's masked-LM head (Gibbs-style: from [${frame.prefix.join(', ')}] [MASK] x ${content} [${frame.suffix.join(', ')}], ` +
        `${settings.sweeps + 1} sweeps redrawing ${perStep} masked positions per run, ${steps} runs, temperature ${settings.temperature}, top-${settings.topK} in the second half); no text is read`,
      vocabulary,
      mask,
    };
  } finally {
    await session.release();
  }
}

/** Why an encoder cannot sample its own sequences, in words. */
export function noMaskedLmHead(model: HfModel): string {
  const outputs = (model.onnx.model.graph?.output ?? []).map((o) => o.name).join(', ');
  return `${model.file} has no masked-LM head (outputs: ${outputs}), so it cannot sample its own sequences`;
}
