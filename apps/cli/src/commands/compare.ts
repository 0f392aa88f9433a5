import {
  compareModels,
  comparisonSvg,
  COMPARE_DEFAULTS,
  DEFAULT_FIDELITY_METRIC,
  FIDELITY_METRICS,
  type ComparisonReport,
  type FidelityMetric,
} from '@zerolm/compare';
import { DTYPES_BY_PRECISION, type ModelDtype } from '@zerolm/adapters';
import { DEVICES, type Device } from '@zerolm/runtime';
import type { CommandModule } from 'yargs';
import { writeFileAtomic } from '../output/files';
import { progressBar } from '../output/progress';
import { formatCount, formatNumber, formatTable, type Cell } from '../output/table';
import { alphaOption, jsonOption, measureOption, oneOf, positiveInteger } from './options';

interface CompareArgs {
  reference: string;
  variants: string[];
  text?: string;
  seqLen: number;
  batch: number;
  runs: number;
  warmup: number;
  maxSamples?: number;
  device: Device;
  dtype?: ModelDtype;
  measure: string;
  alpha: number;
  json: boolean;
  plot?: string;
  plotMetric?: FidelityMetric;
}

export const compareCommand: CommandModule<object, CompareArgs> = {
  command: 'compare <reference> <variants..>',
  describe: 'compare pruned variants with their reference: size, ZeroLM score, onnxruntime latency, fidelity on a text',
  builder: (y) =>
    y
      .positional('reference', { type: 'string', demandOption: true, describe: 'the reference model folder (transformers.js layout)' })
      .positional('variants', { type: 'string', array: true, demandOption: true, describe: 'variant model folders, with the same tokenizer' })
      .option('text', { type: 'string', describe: 'text sample for fidelity, one text a line (default: a bundled text of ~3,600 words)' })
      .option('seq-len', { type: 'number', default: COMPARE_DEFAULTS.seqLen, describe: 'tokens per sequence (decoder window, encoder cut, latency input)', coerce: positiveInteger('seq-len', 2) })
      .option('batch', { type: 'number', default: COMPARE_DEFAULTS.batch, describe: 'sequences per forward pass (latency and fidelity)', coerce: positiveInteger('batch') })
      .option('runs', { type: 'number', default: COMPARE_DEFAULTS.runs, describe: 'timed latency runs (after the warm-up)', coerce: positiveInteger('runs') })
      .option('warmup', { type: 'number', default: COMPARE_DEFAULTS.warmup, describe: 'untimed runs before the timed ones', coerce: positiveInteger('warmup', 0) })
      .option('max-samples', { type: 'number', describe: 'evaluate at most this many windows (decoders) or lines (encoders) of the text', coerce: positiveInteger('max-samples') })
      .option('device', {
        type: 'string',
        default: COMPARE_DEFAULTS.device,
        describe: `onnxruntime provider (${DEVICES.join(', ')}): auto tries CUDA, then CPU`,
        coerce: oneOf('device', DEVICES),
      })
      .option('dtype', { type: 'string', describe: `which ONNX file of each folder: ${DTYPES_BY_PRECISION.join(', ')} (default fp32)`, coerce: oneOf('dtype', DTYPES_BY_PRECISION) })
      .option('measure', measureOption)
      .option('alpha', alphaOption)
      .option('json', jsonOption)
      .option('plot', { type: 'string', describe: 'write an SVG of parameters against fidelity' })
      .option('plot-metric', {
        type: 'string',
        describe: `y axis of --plot: ${Object.keys(FIDELITY_METRICS).join(', ')} (default: kl for decoders, token-cosine for encoders)`,
        coerce: oneOf('plot-metric', Object.keys(FIDELITY_METRICS) as FidelityMetric[]),
      }) as never,
  handler: async (args) => {
    const progress = progressBar('comparing');
    const report = await compareModels(args.reference, args.variants, {
      text: args.text,
      seqLen: args.seqLen,
      batch: args.batch,
      runs: args.runs,
      warmup: args.warmup,
      maxSamples: args.maxSamples,
      device: args.device,
      dtype: args.dtype,
      measure: args.measure,
      alpha: args.alpha,
      onProgress: (done, total) => progress.update(done, total),
    }).finally(() => progress.done());
    if (args.plot) writeFileAtomic(args.plot, comparisonSvg(report, args.plotMetric ?? DEFAULT_FIDELITY_METRIC[report.kind]));
    process.stdout.write(args.json ? `${JSON.stringify(report)}\n` : `${renderComparison(report)}\n`);
  },
};

function mebibytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(2)} MiB`;
}

export function renderComparison(report: ComparisonReport): string {
  const decoder = report.kind === 'decoder';
  const columns = [
    { header: 'model' },
    { header: 'params a+f', numeric: true },
    { header: 'params', numeric: true },
    { header: 'onnx', numeric: true },
    { header: 'score', numeric: true },
    { header: 'median ms', numeric: true },
    { header: 'p90 ms', numeric: true },
    ...(decoder
      ? [{ header: 'top-1', numeric: true }, { header: 'KL', numeric: true }, { header: 'ppl', numeric: true }]
      : [{ header: 'token cos', numeric: true }, { header: 'sent cos', numeric: true }]),
  ];
  const rows: Cell[][] = report.models.map((m) => {
    const f = m.fidelity;
    return [
      m.role === 'reference' ? `${m.label} (ref)` : m.label,
      formatCount(m.params.modules),
      m.params.total === undefined ? undefined : formatCount(m.params.total),
      mebibytes(m.onnxBytes),
      m.score,
      formatNumber(m.latency.medianMs),
      formatNumber(m.latency.p90Ms),
      ...(f.kind === 'decoder'
        ? [f.top1Agreement.toFixed(4), formatNumber(f.klDivergence), formatNumber(f.perplexity)]
        : [f.tokenCosine.toFixed(6), f.sentenceCosine.toFixed(6)]),
    ];
  });
  const providers = [...new Set(report.models.map((m) => m.provider))].join(', ');
  const fallback = report.models.find((m) => m.fallbackReason)?.fallbackReason;
  const text = report.text;
  const sample = decoder
    ? `${text.samples} windows of ${report.seqLen} tokens (${text.samples * report.seqLen} predictions)`
    : `${text.samples} lines cut to ${report.seqLen} tokens`;
  return [
    `${report.models.length - 1} variant(s) of ${report.reference} (${report.kind}s, ${report.dtype}); ZeroLM score: measure ${report.measure}, alpha ${report.alpha}`,
    `text: ${text.bundled ? 'bundled sample' : text.file}, ${text.lines} lines, ${text.tokens} tokens; fidelity over ${sample}`,
    `latency: batch ${report.batch} x ${report.seqLen} tokens, median and p90 of ${report.runs} runs after ${report.warmup} warm-up; provider ${providers}${fallback ? ` (CUDA unavailable: ${fallback})` : ''}`,
    '',
    formatTable(columns, rows),
    '',
    decoder
      ? 'top-1: share of positions whose most likely next token matches the reference; KL: mean KL(reference || model), nats; ppl: perplexity on the text'
      : report.models[0]!.fidelity.kind === 'encoder' && report.models[0]!.fidelity.output === 'logits'
        ? 'token cos: mean cosine similarity of each token\'s masked-LM logits to the reference (the export has no last_hidden_state); sent cos: the same for mean-pooled lines'
        : 'token cos: mean cosine similarity of token embeddings to the reference; sent cos: the same for mean-pooled line embeddings',
  ].join('\n');
}
