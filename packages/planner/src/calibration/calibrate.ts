/**
 * `calibrate`: the activation statistics a model shows on its calibration sequences. Builds S
 * sequences of T tokens (`calibrationSequences`: by default the model's own samples, no text; or
 * windows of a text file; or uniform tokens; the one step that runs the whole model, in a session
 * released before the next step), then one statistics pass, layer by layer (`collectMoments`).
 *
 * Results are cached per (model file, its size and modification time, S, T, seed, source, text
 * file and its size and modification time) within the process, so a sweep or a benchmark does
 * not generate twice.
 */
import type { HfModel } from '@zerolm/adapters';
import * as fs from 'fs';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { trainedPositionLimit, type Device } from '@zerolm/runtime';
import { calibrationSequences, checkCalibrationSource, DEFAULT_CALIBRATION_SOURCE, type CalibrationSequences, type CalibrationSource } from './sequences';
import type { TextCalibrationDetails } from './text-sequences';
import { collectMoments, DEFAULT_STATISTICS_BYTES, type LayerMoments } from './statistics';

export const DEFAULT_CALIBRATION_SAMPLES = 32;
export const DEFAULT_CALIBRATION_LENGTH = 64;

export interface CalibrationOptions {
  /** Sequences (S, default 32). */
  samples?: number;
  /** Tokens per sequence (T, default 64; capped at the model's position limit). */
  length?: number;
  /** Seed of the sampling (default 0; the planner passes its own seed). */
  seed?: number;
  /** Where the sequences come from (default `self-generated`; see `calibrationSequences`). */
  source?: CalibrationSource;
  /** The plain-text file of the `text` source (one document per line). */
  text?: string;
  device?: Device;
  /** Bytes of float64 statistics kept in memory; past it they go to a temporary folder (default 512 MiB). */
  maxStatisticsBytes?: number;
  onProgress?: (done: number, total: number) => void;
}

/** What a calibration was made of (JSON-friendly: plan.json records it). */
export interface CalibrationSummary {
  samples: number;
  /** Tokens per sequence used. */
  length: number;
  /** Tokens per sequence asked for, when the position limit capped it. */
  requestedLength?: number;
  positionLimit?: number;
  seed: number;
  source: CalibrationSource;
  /** How self-generated sequences were sampled (decoders: autoregressive; encoders: masked-lm). */
  sampler?: 'autoregressive' | 'masked-lm';
  /** How the sequences were made, in words. */
  sequences: string;
  /** Why another source than the one asked for ran. */
  fallback?: string;
  /** The text file (path, SHA-256, lines, its tokens and the tokens used), for the text source. */
  text?: TextCalibrationDetails;
  bos?: number;
  eos?: number;
  /** Forward passes of the statistics over the sequences (one, layer by layer). */
  statisticsPasses: number;
  /** Where the per-layer moments are kept: in memory, or past `maxStatisticsBytes` in a temporary folder. */
  statisticsStorage: 'memory' | 'disk';
  /** The onnxruntime provider of the statistics pass, and why not CUDA. */
  provider: string;
  providerReason?: string;
  /** `statisticsMs` is the embeddings and the layers together. */
  timings: { sequencesMs: number; statisticsMs: number; embeddingsMs: number; layersMs: number };
}

export interface Calibration {
  readonly summary: CalibrationSummary;
  readonly sequences: CalibrationSequences;
  /**
   * Per source layer. When kept on disk, `layers[i].ffn` and `.attention` are read from the
   * temporary folder on access (the most recent of each is kept while a reader holds it, and read
   * again if it was freed): go through layers in order.
   */
  readonly layers: readonly LayerMoments[];
  /** Frees the statistics (deletes their temporary folder); the calibration cache calls it when it drops an entry. */
  release(): void;
}

function positive(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`calibration ${what} must be a whole number >= 1 (got ${v})`);
  return v;
}

/** Resolved S, T (after the position cap) and seed. */
export function calibrationSettings(
  model: HfModel,
  options: CalibrationOptions = {},
): { samples: number; length: number; requestedLength: number; positionLimit?: number; seed: number; source: CalibrationSource; text?: string } {
  const samples = positive(options.samples, DEFAULT_CALIBRATION_SAMPLES, 'samples');
  const requestedLength = positive(options.length, DEFAULT_CALIBRATION_LENGTH, 'length');
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`calibration seed must be a whole number (got ${seed})`);
  const limit = trainedPositionLimit(model.config);
  const length = limit !== undefined ? Math.min(requestedLength, limit) : requestedLength;
  if (length < 2) throw new Error(`${model.dir} reads ${limit} positions: too few for calibration sequences`);
  const source = checkCalibrationSource(options.source ?? (options.text !== undefined ? 'text' : DEFAULT_CALIBRATION_SOURCE));
  return { samples, length, requestedLength, ...(limit === undefined ? {} : { positionLimit: limit }), seed, source, ...(options.text === undefined ? {} : { text: options.text }) };
}

const cache = new Map<string, Promise<Calibration>>();
/** Calibrations kept per process: a sweep reuses one; a benchmark over seeds several. */
const CACHE_ENTRIES = 8;

function cacheKey(model: HfModel, settings: ReturnType<typeof calibrationSettings>, maxBytes: number): string {
  const stat = fs.statSync(model.file);
  const { samples, length, seed, source, text } = settings;
  // A text file that is missing or not a file gets no stamp; reading it then fails with its own error.
  const textStat = text !== undefined && fs.existsSync(text) ? fs.statSync(text) : undefined;
  const textStamp = text === undefined ? [] : [path.resolve(text), textStat?.size, textStat?.mtimeMs];
  return JSON.stringify([fs.realpathSync(model.file), stat.size, stat.mtimeMs, samples, length, seed, maxBytes, source, ...textStamp]);
}

/** The calibration of `model` (cached per model file, S, T and seed within the process). */
export function calibrate(model: HfModel, options: CalibrationOptions = {}): Promise<Calibration> {
  const settings = calibrationSettings(model, options);
  const maxBytes = options.maxStatisticsBytes ?? DEFAULT_STATISTICS_BYTES;
  const key = cacheKey(model, settings, maxBytes);
  const cached = cache.get(key);
  if (cached) {
    // Most recently used last.
    cache.delete(key);
    cache.set(key, cached);
    return cached;
  }
  const pending = run(model, settings, maxBytes, options);
  cache.set(key, pending);
  // A failed calibration is not kept.
  pending.catch(() => cache.delete(key));
  while (cache.size > CACHE_ENTRIES) {
    const oldest = cache.keys().next().value!;
    releaseLater(cache.get(oldest)!);
    cache.delete(oldest);
  }
  return pending;
}

function releaseLater(entry: Promise<Calibration>): void {
  entry.then((c) => c.release()).catch(() => undefined);
}

/** Forgets every cached calibration (frees their memory and temporary files). */
export function clearCalibrationCache(): void {
  for (const entry of cache.values()) releaseLater(entry);
  cache.clear();
}

async function run(
  model: HfModel,
  settings: ReturnType<typeof calibrationSettings>,
  maxBytes: number,
  options: CalibrationOptions,
): Promise<Calibration> {
  const device = options.device ?? 'auto';
  const started = performance.now();
  const sequences = await calibrationSequences(model, {
    samples: settings.samples,
    length: settings.length,
    seed: settings.seed,
    source: settings.source,
    ...(settings.text === undefined ? {} : { text: settings.text }),
    device,
  });
  const sequencesMs = performance.now() - started;
  const statsStarted = performance.now();
  const statistics = await collectMoments(model, sequences.tokens, sequences.samples, sequences.length, {
    device,
    maxBytes,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const summary: CalibrationSummary = {
    samples: settings.samples,
    length: settings.length,
    ...(settings.requestedLength !== settings.length ? { requestedLength: settings.requestedLength } : {}),
    ...(settings.positionLimit === undefined ? {} : { positionLimit: settings.positionLimit }),
    seed: settings.seed,
    source: sequences.source,
    ...(sequences.sampler === undefined ? {} : { sampler: sequences.sampler }),
    sequences: sequences.description,
    ...(sequences.fallback === undefined ? {} : { fallback: sequences.fallback }),
    ...(sequences.text === undefined ? {} : { text: sequences.text }),
    ...(sequences.bos === undefined ? {} : { bos: sequences.bos }),
    ...(sequences.eos === undefined ? {} : { eos: sequences.eos }),
    statisticsPasses: statistics.passes,
    statisticsStorage: statistics.storage,
    provider: statistics.provider,
    ...(statistics.providerReason === undefined ? {} : { providerReason: statistics.providerReason }),
    timings: { sequencesMs, statisticsMs: performance.now() - statsStarted, ...statistics.timings },
  };
  return { summary, sequences, layers: statistics.layers, release: () => statistics.store.release() };
}
