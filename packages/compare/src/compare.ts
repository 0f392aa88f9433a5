/**
 * Side-by-side comparison of a reference model folder and its variants (pruned, quantized, ...),
 * all measured in one run: size (parameters, ONNX bytes, ZeroLM score), onnxruntime latency, and
 * fidelity to the reference on a text sample (see metrics.ts for the definitions and text.ts for
 * how the text becomes model inputs).
 */
import { loadHfModel, onnxFileFor, readConfig, type ModelDtype, type NormalizedConfig } from '@zerolm/adapters';
import { scoreReport, type ParamCounts } from '@zerolm/core';
import { isExternalTensor, externalDataInfo, resolveExternalPath, type LoadedModel } from '@zerolm/onnx';
import { existsSync, statSync } from 'fs';
import * as path from 'path';
import { assertSameTokenizer, checkTokenizerFiles, DEVICES, loadTokenizer, ModelRunner, positionLimit, type Device, type Provider, type TokenBatch } from '@zerolm/runtime';
import { measureLatencies, type LatencyStats } from './latency';
import { EmbeddingAgreement, NextTokenAgreement, PerplexityAccumulator, summarizeLogits, type LogitSummary } from './metrics';
import { BUNDLED_TEXT, encoderSequences, readSampleText, TokenWindows } from './text';

export interface CompareOptions {
  /** Text file of the fidelity sample, one text a line (default: the bundled sample, `BUNDLED_TEXT`). */
  text?: string;
  /** Tokens per sequence: decoder window length, encoder truncation, latency input (default 64). */
  seqLen?: number;
  /** Sequences per forward pass, for latency and fidelity alike (default 8). */
  batch?: number;
  /** Timed latency runs (default 20). */
  runs?: number;
  /** Untimed runs before them (default 3). */
  warmup?: number;
  /** onnxruntime provider: `auto` tries CUDA, then CPU (default `auto`). */
  device?: Device;
  /** Which ONNX file of each folder (default fp32). */
  dtype?: ModelDtype;
  /** Capacity measure of the ZeroLM score (default msv). */
  measure?: string;
  /** Attention weight of the ZeroLM score (default 0.5). */
  alpha?: number;
  /** Evaluate at most this many windows (decoders) or lines (encoders) of the text (default all). */
  maxSamples?: number;
  /** Called as work completes (model loading, latency, fidelity batches). */
  onProgress?: (done: number, total: number) => void;
}

export const COMPARE_DEFAULTS = { seqLen: 64, batch: 8, runs: 20, warmup: 3, device: 'auto' as Device, dtype: 'fp32' as ModelDtype } as const;

export type ModelKind = 'decoder' | 'encoder';

export interface DecoderFidelity {
  readonly kind: 'decoder';
  /** Share of positions where both models rank the same next token first (the reference: 1). */
  readonly top1Agreement: number;
  /** Mean KL(reference || this model) of next-token distributions, nats (the reference: 0). */
  readonly klDivergence: number;
  /** This model's perplexity on the text. */
  readonly perplexity: number;
  /** Predicted positions evaluated. */
  readonly positions: number;
}

export interface EncoderFidelity {
  readonly kind: 'encoder';
  /** The output compared: `last_hidden_state`, or `logits` for fill-mask exports without it. */
  readonly output: string;
  /** Mean cosine similarity of the output's rows, over all tokens (the reference: 1). */
  readonly tokenCosine: number;
  /** Mean cosine similarity of mean-pooled sequence embeddings (the reference: 1). */
  readonly sentenceCosine: number;
  readonly tokens: number;
  readonly sentences: number;
}

export type Fidelity = DecoderFidelity | EncoderFidelity;

export interface ModelComparison {
  /** The folder as given. */
  readonly dir: string;
  /** Short name for tables and plots (the folder name, or the path where names repeat). */
  readonly label: string;
  readonly role: 'reference' | 'variant';
  readonly modelType: string;
  readonly dtype: ModelDtype;
  /** The ONNX file and its external data files. */
  readonly onnxFiles: readonly string[];
  readonly onnxBytes: number;
  /** Attention, FFN, their sum (`modules`) and everything in the file (`total`). */
  readonly params: ParamCounts;
  readonly score: number;
  readonly provider: Provider;
  /** Why `auto` did not get CUDA. */
  readonly fallbackReason?: string;
  readonly latency: LatencyStats;
  readonly fidelity: Fidelity;
}

export interface ComparisonReport {
  readonly kind: ModelKind;
  readonly reference: string;
  readonly text: {
    readonly file: string;
    readonly bundled: boolean;
    readonly lines: number;
    /** Tokens of all lines, special tokens included. */
    readonly tokens: number;
    /** Windows (decoders) or lines (encoders) evaluated. */
    readonly samples: number;
  };
  readonly seqLen: number;
  readonly batch: number;
  readonly runs: number;
  readonly warmup: number;
  readonly device: Device;
  readonly dtype: ModelDtype;
  readonly measure: string;
  readonly alpha: number;
  readonly models: readonly ModelComparison[];
}

function checkInteger(name: string, value: number, minimum: number): number {
  if (!Number.isInteger(value) || value < minimum) throw new Error(`${name} must be an integer >= ${minimum} (got ${value})`);
  return value;
}

/** The folder's model config, after checking it is a folder with the ONNX file and tokenizer compare needs. */
function inspectFolder(dir: string, dtype: ModelDtype): NormalizedConfig {
  if (!existsSync(dir)) throw new Error(`${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder (compare takes model folders)`);
  const config = readConfig(dir);
  onnxFileFor(dir, dtype);
  checkTokenizerFiles(dir);
  return config;
}

/** The files onnxruntime reads for this model: the graph and every external data file it names. */
export function onnxFilesOf(onnx: LoadedModel): string[] {
  const files = new Set<string>([onnx.path]);
  for (const tensor of onnx.model.graph?.initializer ?? []) {
    if (isExternalTensor(tensor)) files.add(resolveExternalPath(onnx.baseDir, externalDataInfo(tensor).location, tensor.name ?? ''));
  }
  return [...files];
}

function labels(dirs: readonly string[]): string[] {
  const names = dirs.map((d) => path.basename(path.resolve(d)));
  return names.map((name, i) => (names.filter((n) => n === name).length > 1 ? dirs[i]! : name));
}

/** The first `batch * seqLen` tokens of the stream, repeated if the text is shorter: the latency input. */
export function latencyBatch(stream: Int32Array, batch: number, seqLen: number): TokenBatch {
  const ids = new BigInt64Array(batch * seqLen);
  for (let i = 0; i < ids.length; i++) ids[i] = BigInt(stream[i % stream.length] as number);
  return { batch, seqLen, ids, mask: new BigInt64Array(batch * seqLen).fill(1n) };
}

interface OpenedModel {
  readonly dir: string;
  readonly modelType: string;
  readonly onnxFiles: string[];
  readonly onnxBytes: number;
  readonly params: ParamCounts;
  readonly score: number;
  readonly runner: ModelRunner;
}

async function openModel(dir: string, options: Required<Pick<CompareOptions, 'dtype' | 'measure' | 'alpha' | 'device'>>): Promise<OpenedModel> {
  // The decoded file (`model`) is dropped on return: the session holds its own copy.
  const model = loadHfModel(dir, { dtype: options.dtype });
  const report = scoreReport(model.graph, { measure: options.measure, alpha: options.alpha });
  const onnxFiles = onnxFilesOf(model.onnx);
  const onnxBytes = onnxFiles.reduce((sum, file) => sum + statSync(file).size, 0);
  const runner = await ModelRunner.open(model, options.device);
  return { dir, modelType: model.config.modelType, onnxFiles, onnxBytes, params: report.params, score: report.score, runner };
}

/** Decoder fidelity of every variant plus every model's perplexity, one batch of windows at a time. */
async function decoderFidelity(
  runners: readonly ModelRunner[],
  windows: TokenWindows,
  batch: number,
  progress: () => void,
): Promise<DecoderFidelity[]> {
  const { seqLen } = windows;
  const perplexity = runners.map(() => new PerplexityAccumulator());
  const agreement = runners.map(() => new NextTokenAgreement());
  for (let first = 0; first < windows.count; first += batch) {
    const size = Math.min(batch, windows.count - first);
    const ids = new BigInt64Array(size * seqLen);
    const targets = new Int32Array(size * seqLen);
    for (let b = 0; b < size; b++) {
      const inputs = windows.inputs(first + b);
      for (let t = 0; t < seqLen; t++) ids[b * seqLen + t] = BigInt(inputs[t] as number);
      targets.set(windows.targets(first + b), b * seqLen);
    }
    const input: TokenBatch = { batch: size, seqLen, ids, mask: new BigInt64Array(size * seqLen).fill(1n) };
    let reference: { logits: Float32Array; summary: LogitSummary } | undefined;
    for (let m = 0; m < runners.length; m++) {
      const output = await runners[m]!.run(input);
      const vocab = output.dims[2]!;
      if (m > 0 && vocab !== reference!.summary.vocab) {
        throw new Error(`${runners[m]!.file} predicts over ${vocab} tokens, the reference over ${reference!.summary.vocab}`);
      }
      const summary = summarizeLogits(output.data, size * seqLen, vocab, m === 0 && runners.length > 1);
      perplexity[m]!.add(output.data, summary, targets);
      if (m === 0) reference = { logits: output.data, summary };
      else agreement[m]!.add(reference!.logits, reference!.summary, output.data, summary);
      progress();
    }
  }
  return runners.map((_, m) => ({
    kind: 'decoder' as const,
    top1Agreement: m === 0 ? 1 : agreement[m]!.top1Agreement,
    klDivergence: m === 0 ? 0 : agreement[m]!.meanKl,
    perplexity: perplexity[m]!.perplexity,
    positions: perplexity[m]!.positions,
  }));
}

/** Encoder fidelity of every variant, one batch of padded sequences at a time. */
async function encoderFidelity(
  runners: readonly ModelRunner[],
  sequences: readonly Int32Array[],
  batch: number,
  padTokenId: number,
  progress: () => void,
): Promise<EncoderFidelity[]> {
  const agreement = runners.map(() => new EmbeddingAgreement());
  const output = runners[0]!.outputName;
  const other = runners.find((r) => r.outputName !== output);
  if (other) throw new Error(`${other.file} is compared on its "${other.outputName}", the reference on its "${output}": the folders export different tasks`);
  for (let first = 0; first < sequences.length; first += batch) {
    const group = sequences.slice(first, first + batch);
    const seqLen = Math.max(...group.map((s) => s.length));
    const ids = new BigInt64Array(group.length * seqLen).fill(BigInt(padTokenId));
    const mask = new BigInt64Array(group.length * seqLen);
    group.forEach((sequence, b) => {
      for (let t = 0; t < sequence.length; t++) {
        ids[b * seqLen + t] = BigInt(sequence[t] as number);
        mask[b * seqLen + t] = 1n;
      }
    });
    const input: TokenBatch = { batch: group.length, seqLen, ids, mask };
    const lengths = group.map((s) => s.length);
    let reference: Float32Array | undefined;
    for (let m = 0; m < runners.length; m++) {
      const output = await runners[m]!.run(input);
      const hidden = output.dims[2]!;
      if (m === 0) reference = output.data;
      else {
        // config.json was checked; this catches a graph whose output disagrees with its config
        if (reference!.length !== output.data.length) {
          throw new Error(`${runners[m]!.file} returns hidden states of width ${hidden}, the reference ${reference!.length / (group.length * seqLen)}`);
        }
        agreement[m]!.add(reference!, output.data, lengths, seqLen, hidden);
      }
      progress();
    }
  }
  const tokens = sequences.reduce((sum, s) => sum + s.length, 0);
  return runners.map((_, m) => ({
    kind: 'encoder' as const,
    output,
    tokenCosine: m === 0 ? 1 : agreement[m]!.tokenCosine,
    sentenceCosine: m === 0 ? 1 : agreement[m]!.sentenceCosine,
    tokens,
    sentences: sequences.length,
  }));
}

/**
 * Measures the reference folder and each variant folder in one run. Every folder must be a
 * transformers.js model folder of the same kind (all decoders or all encoders) with the same
 * tokenizer files as the reference; errors name the folder and what is wrong.
 */
export async function compareModels(referenceDir: string, variantDirs: readonly string[], options: CompareOptions = {}): Promise<ComparisonReport> {
  const seqLen = checkInteger('--seq-len', options.seqLen ?? COMPARE_DEFAULTS.seqLen, 2);
  const batch = checkInteger('--batch', options.batch ?? COMPARE_DEFAULTS.batch, 1);
  const runs = checkInteger('--runs', options.runs ?? COMPARE_DEFAULTS.runs, 1);
  const warmup = checkInteger('warm-up runs', options.warmup ?? COMPARE_DEFAULTS.warmup, 0);
  const maxSamples = options.maxSamples === undefined ? Infinity : checkInteger('--max-samples', options.maxSamples, 1);
  const device = options.device ?? COMPARE_DEFAULTS.device;
  if (!DEVICES.includes(device)) throw new Error(`unknown device "${device}" (known: ${DEVICES.join(', ')})`);
  const dtype = options.dtype ?? COMPARE_DEFAULTS.dtype;
  const measure = options.measure ?? 'msv';
  const alpha = options.alpha ?? 0.5;
  if (variantDirs.length === 0) throw new Error('name at least one variant folder to compare with the reference');

  // Cheap checks of every folder first, so a bad folder fails before any model is loaded.
  const dirs = [referenceDir, ...variantDirs];
  const configs = dirs.map((dir) => inspectFolder(dir, dtype));
  const referenceConfig = configs[0]!;
  const kind: ModelKind = referenceConfig.decoder ? 'decoder' : 'encoder';
  configs.forEach((config, i) => {
    if (config.decoder !== referenceConfig.decoder) {
      throw new Error(
        `${dirs[i]} is ${config.decoder ? 'a decoder' : 'an encoder'} (${config.modelType}) but the reference ${referenceDir} is ${kind === 'decoder' ? 'a decoder' : 'an encoder'} (${referenceConfig.modelType}): compare models of one kind`,
      );
    }
    if (kind === 'encoder' && config.hiddenSize !== referenceConfig.hiddenSize) {
      throw new Error(`${dirs[i]} has hidden size ${config.hiddenSize}, the reference ${referenceConfig.hiddenSize}: embeddings of different widths cannot be compared`);
    }
    if (i > 0) assertSameTokenizer(referenceDir, dirs[i]!);
    const limit = positionLimit(config);
    if (limit !== undefined && seqLen > limit) throw new Error(`--seq-len ${seqLen} exceeds the ${limit} positions ${dirs[i]} can read`);
  });

  const text = readSampleText(options.text ?? BUNDLED_TEXT);
  const tokenizer = await loadTokenizer(referenceDir);
  const encoded = text.lines.map((line) => tokenizer.encode(line));
  const totalTokens = encoded.reduce((sum, line) => sum + line.length, 0);
  const windows = kind === 'decoder' ? new TokenWindows(encoded, seqLen, maxSamples) : undefined;
  const sequences = kind === 'encoder' ? encoderSequences(encoded, seqLen, maxSamples) : undefined;
  const sampleCount = windows ? windows.count : sequences!.length;
  const stream = windows?.stream ?? Int32Array.from(encoded.flat());

  const batchesPerModel = Math.ceil(sampleCount / batch);
  const totalSteps = dirs.length * (2 + batchesPerModel);
  let done = 0;
  const progress = () => options.onProgress?.(++done, totalSteps);

  const opened: OpenedModel[] = [];
  try {
    for (const dir of dirs) {
      opened.push(await openModel(dir, { dtype, measure, alpha, device }));
      progress();
    }
    const latencyInput = latencyBatch(stream, batch, seqLen);
    const latencies = await measureLatencies(opened.map((model) => () => model.runner.run(latencyInput)), runs, warmup);
    opened.forEach(() => progress());
    const runners = opened.map((m) => m.runner);
    const fidelity: Fidelity[] = windows
      ? await decoderFidelity(runners, windows, batch, progress)
      : await encoderFidelity(runners, sequences!, batch, tokenizer.padTokenId, progress);
    const names = labels(dirs);
    return {
      kind,
      reference: referenceDir,
      text: { file: text.file, bundled: options.text === undefined, lines: text.lines.length, tokens: totalTokens, samples: sampleCount },
      seqLen,
      batch,
      runs,
      warmup,
      device,
      dtype,
      measure,
      alpha,
      models: opened.map((model, i) => ({
        dir: model.dir,
        label: names[i]!,
        role: i === 0 ? 'reference' : 'variant',
        modelType: model.modelType,
        dtype,
        onnxFiles: model.onnxFiles,
        onnxBytes: model.onnxBytes,
        params: model.params,
        score: model.score,
        provider: model.runner.provider,
        ...(model.runner.fallbackReason !== undefined ? { fallbackReason: model.runner.fallbackReason } : {}),
        latency: latencies[i]!,
        fidelity: fidelity[i]!,
      })),
    };
  } finally {
    for (const model of opened) await model.runner.release();
  }
}
