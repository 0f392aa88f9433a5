import {
  ATTENTION_IMPORTANCE_METHODS,
  CALIBRATION_SOURCES,
  CORRECTIONS,
  FFN_IMPORTANCE_METHODS,
  DEFAULT_CALIBRATION_LENGTH,
  DEFAULT_CALIBRATION_SAMPLES,
  DEFAULT_PRUNE_MEASURE,
  DEFAULT_CORRECTION,
  DEFAULT_IMPORTANCE,
  listImportances,
  prune,
  pruneSweep,
  SEARCH_METHODS,
  sweepFolderName,
  type AttentionImportanceMethod,
  type CalibrationSource,
  type CorrectionMethod,
  type FfnImportanceMethod,
  type PlanFile,
  type PlanPhase,
  type PruneResult,
  type SearchMethod,
} from '@zerolm/planner';
import { comparisonSvg, DEFAULT_FIDELITY_METRIC } from '@zerolm/compare';
import { DTYPES_BY_PRECISION, type ModelDtype } from '@zerolm/adapters';
import { DEVICES, type Device } from '@zerolm/runtime';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { UsageError } from '../errors';
import { writeFileAtomic } from '../output/files';
import { progressBar } from '../output/progress';
import { formatCount, formatNumber, formatTable } from '../output/table';
import { renderComparison } from './compare';
import { alphaOption, jsonOption, measureOption, oneOf, positiveInteger, variantOption } from './options';

interface PruneArgs {
  model: string;
  out?: string;
  targetParams?: number;
  targetFlops?: number;
  seqLen: number;
  maxLatencyMs?: number;
  granularity: string;
  roundTo: number;
  search: SearchMethod;
  evals: number;
  device: Device;
  seed: number;
  importance?: string;
  ffnImportance: FfnImportanceMethod;
  attentionImportance: AttentionImportanceMethod;
  correction: CorrectionMethod;
  calibration?: CalibrationSource;
  calibrationText?: string;
  calibrationSamples: number;
  calibrationLength: number;
  measure: string;
  alpha: number;
  variant: 'linear' | 'log';
  fillBudget: boolean;
  planOnly: boolean;
  force: boolean;
  json: boolean;
  sweep?: number[];
  plot?: string;
  dtypes?: ModelDtype[];
}

function dtypeList(value: string): ModelDtype[] {
  const dtypes = String(value)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = dtypes.find((d) => !(DTYPES_BY_PRECISION as readonly string[]).includes(d));
  if (unknown !== undefined || dtypes.length === 0) {
    throw new UsageError(`--dtypes takes a comma-separated list of ${DTYPES_BY_PRECISION.join(', ')} (got "${value}")`);
  }
  return dtypes as ModelDtype[];
}

/** A budget: a fraction in (0, 1] of the Attention+FFN parameters (or FLOPs), or an absolute count > 1. */
function budget(name: string) {
  return (value: number) => {
    if (!Number.isFinite(value) || value <= 0 || (value > 1 && !Number.isInteger(value))) {
      throw new UsageError(`--${name} must be a fraction in (0, 1] or a whole count above 1 (got ${value})`);
    }
    return value;
  };
}

function sweepList(value: string | number): number[] {
  const fractions = String(value)
    .split(',')
    .map((s) => Number(s.trim()));
  for (const f of fractions) {
    if (!(f > 0 && f < 1)) throw new UsageError(`--sweep takes fractions in (0, 1), comma separated (got "${value}")`);
  }
  return fractions;
}

export const pruneCommand: CommandModule<object, PruneArgs> = {
  command: 'prune <model>',
  describe: 'prune a model folder to a budget without data, and export a smaller model folder transformers.js loads',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'the model folder (transformers.js layout)' })
      .option('out', { type: 'string', describe: 'output folder (must be empty or absent, unless --force)' })
      .option('target-params', { type: 'number', describe: 'keep this fraction (0..1] of the Attention+FFN parameters, or this many', coerce: budget('target-params') })
      .option('target-flops', { type: 'number', describe: 'keep this fraction (0..1] of the FLOPs per token at --seq-len, or this many', coerce: budget('target-flops') })
      .option('seq-len', { type: 'number', default: 128, describe: 'sequence length of the FLOPs count and the latency measurement', coerce: positiveInteger('seq-len') })
      .option('max-latency-ms', { type: 'number', describe: 'also keep the measured onnxruntime latency (batch 1, --seq-len tokens) under this (slower: candidates are exported and timed)' })
      .option('granularity', { type: 'string', default: 'heads,ffn', describe: 'units the search may cut: any of heads, ffn, layers' })
      .option('round-to', { type: 'number', default: 8, describe: 'kept FFN widths are multiples of this (the full width is always allowed)', coerce: positiveInteger('round-to') })
      .option('search', {
        type: 'string',
        default: 'evolutionary',
        describe: `search: ${SEARCH_METHODS.join(', ')} (uniform: the same fraction in every layer; global: the best units of the whole model, for an importance whose scores compare across layers, flap)`,
        coerce: oneOf('search', SEARCH_METHODS),
      })
      .option('evals', { type: 'number', default: 2000, describe: 'candidates the evolutionary search evaluates', coerce: positiveInteger('evals') })
      .option('device', { type: 'string', default: 'auto', describe: `onnxruntime provider for scoring (${DEVICES.join(', ')}): auto tries CUDA, then CPU`, coerce: oneOf('device', DEVICES) })
      .option('seed', { type: 'number', default: 0, describe: 'seed of the search (and of random importance)', coerce: positiveInteger('seed', 0) })
      .option('importance', {
        type: 'string',
        describe: `which units to keep inside a layer: ${listImportances().map((i) => i.name).join(', ')} (default ${DEFAULT_IMPORTANCE}: runs the model on sequences it generates itself, no text)`,
        coerce: (name: string) => oneOf('importance', listImportances().map((i) => i.name))(name),
      })
      .option('ffn-importance', {
        type: 'string',
        default: 'obs',
        describe: `self-generated: how FFN neurons are ranked (${FFN_IMPORTANCE_METHODS.join(', ')}): obs is greedy structured OBS, exact up to 1024 neurons and in 64 steps above; chunked-obs takes 64 steps at any width; energy is the diagonal E[h^2] ||down||^2`,
        coerce: oneOf('ffn-importance', FFN_IMPORTANCE_METHODS),
      })
      .option('attention-importance', {
        type: 'string',
        default: 'auto',
        describe: `self-generated: how attention units are ranked (${ATTENTION_IMPORTANCE_METHODS.join(', ')}): ablation ranks by the model's output change (KL of its own predictions; an encoder's final hidden states), block-obs by block OBS on o alone; auto is ablation where running the model once per candidate fits, else block-obs`,
        coerce: oneOf('attention-importance', ATTENTION_IMPORTANCE_METHODS),
      })
      .option('correction', {
        type: 'string',
        default: DEFAULT_CORRECTION,
        describe: `after planning: refit refits the kept rows of each pruned o / down by least squares on the calibration statistics; bias adds the removed channels' mean output to its output bias (FLAP's bias compensation); none writes the sliced weights (${CORRECTIONS.join(', ')})`,
        coerce: oneOf('correction', CORRECTIONS),
      })
      .option('calibration', {
        type: 'string',
        describe:
          `where the calibration sequences come from (${CALIBRATION_SOURCES.join(', ')}): self-generated (default) samples them from the model itself ` +
          '(decoders from BOS, fill-mask encoders from their masked-LM head; encoders without one fall back to uniform), text reads --calibration-text, uniform draws tokens uniformly',
        coerce: oneOf('calibration', CALIBRATION_SOURCES),
      })
      .option('calibration-text', {
        type: 'string',
        describe: 'plain-text file to calibrate on (one document per line; tokenized by the model\'s tokenizer, cut into the calibration sequences at random, seeded); implies --calibration text',
      })
      .option('calibration-samples', {
        type: 'number',
        default: DEFAULT_CALIBRATION_SAMPLES,
        describe: 'calibration sequences for the statistics (model-run importance rules, refit)',
        coerce: positiveInteger('calibration-samples'),
      })
      .option('calibration-length', {
        type: 'number',
        default: DEFAULT_CALIBRATION_LENGTH,
        describe: 'tokens per calibration sequence (capped at the positions the model was trained on)',
        coerce: positiveInteger('calibration-length'),
      })
      .option('measure', {
        ...measureOption,
        default: DEFAULT_PRUNE_MEASURE,
        describe: 'capacity measure the search maximises (nuclear-bound: only falls as units go; msv, the paper\'s, rises as weak units go and empties layers)',
      })
      .option('alpha', alphaOption)
      .option('variant', variantOption)
      .option('fill-budget', {
        type: 'boolean',
        default: true,
        describe: 'land at the budget (add the least damaging units that fit); --no-fill-budget: the best-scoring plan at or under it',
      })
      .option('plan-only', { type: 'boolean', default: false, describe: 'plan and print, write nothing' })
      .option('force', { type: 'boolean', default: false, describe: 'replace a non-empty --out' })
      .option('json', jsonOption)
      .option('sweep', { type: 'string', describe: 'several parameter budgets, e.g. 0.9,0.75,0.5: one variant each in <out>/p90 ..., then compared with the input', coerce: sweepList })
      .option('plot', { type: 'string', describe: 'with --sweep: where to write the comparison SVG (default <out>/comparison.svg)' })
      .option('dtypes', {
        type: 'string',
        describe: `weight files to write, e.g. fp32,q4f16 (${DTYPES_BY_PRECISION.join(', ')}; default: every one the model holds); one the model lacks is made from its pruned fp32 file as onnxruntime's quantizers make it`,
        coerce: dtypeList,
      })
      .check((args) => {
        const budgets = ['targetParams', 'targetFlops', 'sweep'].filter((k) => (args as Record<string, unknown>)[k] !== undefined);
        if (args.sweep !== undefined && budgets.length > 1) throw new UsageError('--sweep sets the parameter budgets itself: drop --target-params / --target-flops');
        if (budgets.length === 0 && args.maxLatencyMs === undefined) throw new UsageError('give a budget: --target-params, --target-flops, --max-latency-ms or --sweep');
        if (!args.out && !args.planOnly) throw new UsageError('name the output folder with --out (or ask for --plan-only)');
        if (args.sweep !== undefined && args.planOnly) throw new UsageError('--sweep writes and compares variants: it cannot be --plan-only');
        if (args.plot !== undefined && args.sweep === undefined) throw new UsageError('--plot goes with --sweep (use zerolm compare --plot otherwise)');
        if (args.calibration === 'text' && args.calibrationText === undefined) throw new UsageError('--calibration text needs --calibration-text FILE');
        if (args.calibrationText !== undefined && args.calibration !== undefined && args.calibration !== 'text') {
          throw new UsageError(`--calibration-text goes with --calibration text (got --calibration ${args.calibration})`);
        }
        return true;
      }) as never,
  handler: async (args) => {
    const progress = progressBar('pruning');
    const onProgress = (done: number, total: number, phase: PlanPhase) => progress.update(done, total, phase);
    const options = {
      ...(args.targetParams !== undefined ? { targetParams: args.targetParams } : {}),
      ...(args.targetFlops !== undefined ? { targetFlops: args.targetFlops } : {}),
      ...(args.maxLatencyMs !== undefined ? { maxLatencyMs: args.maxLatencyMs } : {}),
      ...(args.importance !== undefined ? { importance: args.importance } : {}),
      ffnImportance: args.ffnImportance,
      attentionImportance: args.attentionImportance,
      correction: args.correction,
      calibration: {
        samples: args.calibrationSamples,
        length: args.calibrationLength,
        ...(args.calibration !== undefined ? { source: args.calibration } : {}),
        ...(args.calibrationText !== undefined ? { source: 'text' as const, text: args.calibrationText } : {}),
      },
      seqLen: args.seqLen,
      granularity: args.granularity,
      roundTo: args.roundTo,
      search: args.search,
      evals: args.evals,
      device: args.device,
      seed: args.seed,
      measure: args.measure,
      alpha: args.alpha,
      variant: args.variant,
      fillBudget: args.fillBudget,
      force: args.force,
      onProgress,
      ...(args.dtypes ? { dtypes: args.dtypes } : {}),
    };
    if (args.sweep) {
      const out = args.out!;
      const sweep = await pruneSweep(args.model, {
        ...options,
        out,
        fractions: args.sweep,
        onVariant: (fraction, result) => {
          progress.done();
          if (!args.json) process.stdout.write(`${summaryLine(result, sweepFolderName(fraction), path.join(out, sweepFolderName(fraction)))}\n`);
        },
        compare: { onProgress: (done, total) => progress.update(done, total, 'compare') },
      }).finally(() => progress.done());
      const plot = args.plot ?? path.join(out, 'comparison.svg');
      writeFileAtomic(plot, comparisonSvg(sweep.comparison, DEFAULT_FIDELITY_METRIC[sweep.comparison.kind]));
      if (args.json) {
        process.stdout.write(`${JSON.stringify({ variants: sweep.variants.map((v) => ({ fraction: v.fraction, dir: v.dir, plan: v.result.planFile })), comparison: sweep.comparison, plot })}\n`);
      } else {
        process.stdout.write(`\n${renderComparison(sweep.comparison)}\nplot: ${plot}\n`);
      }
      return;
    }
    const result = await prune(args.model, { ...options, ...(args.out ? { out: args.out } : {}), planOnly: args.planOnly }).finally(() => progress.done());
    process.stdout.write(args.json ? `${JSON.stringify({ ...result.planFile, out: result.export?.outDir, files: result.export?.files })}\n` : `${renderPrune(result)}\n`);
  },
};

/** How one layer's FFN neurons were ranked, in a few words. */
function ffnRule(f: NonNullable<PlanFile['importance']['ffn']>[number]): string {
  return f.method === 'chunked-obs' ? `OBS in ${f.steps} steps of ${f.chunk}` : f.method === 'obs' ? 'OBS' : 'diagonal energy';
}

/**
 * Lines saying which layers were ranked otherwise than by the defaults (the output change for
 * attention, exact OBS for FFN neurons) and why; empty when every layer was ranked by them.
 */
export function describeRuleChanges(p: PlanFile): string[] {
  const lines: string[] = [];
  const attention = p.importance.attention;
  if (attention?.method === 'block-obs' && attention.reason) lines.push(`attention units of every layer by block OBS on o: ${attention.reason}`);
  const byReason = new Map<string, number[]>();
  (p.importance.ffn ?? []).forEach((f, i) => {
    if (!f.reason) return;
    const key = `${ffnRule(f)}: ${f.reason}`;
    byReason.set(key, [...(byReason.get(key) ?? []), i]);
  });
  for (const [text, layers] of byReason) lines.push(`FFN neurons of ${layers.length === p.layers.length ? 'every layer' : `layer${layers.length > 1 ? 's' : ''} ${layers.join(', ')}`} by ${text}`);
  return lines;
}

/** One line: the calibration's source, size and how its sequences were made (and the text file, or why it fell back). */
function describeCalibration(c: NonNullable<PlanFile['calibration']>): string {
  const text = c.text ? `: ${c.text.file} (sha256 ${c.text.sha256.slice(0, 12)}..., ${formatCount(c.text.tokensUsed)} of its ${formatCount(c.text.fileTokens)} tokens)` : '';
  return `calibration ${c.source}${text}, ${c.samples} x ${c.length} tokens, seed ${c.seed}: ${c.sequences}${c.fallback ? ` (${c.fallback})` : ''}`;
}

/** What the correction changed, in parentheses. */
function describeCorrection(c: PlanFile['correction']): string {
  if (c.method === 'refit') return ` (${c.matrices ?? 0} matrices refitted)`;
  if (c.method === 'bias') return ` (${c.biases ?? 0} output biases compensated${c.addedBiases ? `, ${c.addedBiases} of them added` : ''})`;
  return '';
}

/** The rule and, for model rules, how attention units and FFN neurons were ranked. */
function describeImportance(p: PlanFile): string {
  const parts: string[] = [];
  if (p.importance.attention) parts.push(`attention by ${p.importance.attention.method === 'kl' ? 'KL of its own predictions' : p.importance.attention.method === 'hidden' ? 'the change of its final hidden states' : `block OBS${p.importance.attention.reason ? ` (${p.importance.attention.reason})` : ''}`}`);
  if (p.importance.ffn) {
    const methods = [...new Set(p.importance.ffn.map(ffnRule))];
    parts.push(`FFN by ${methods.join(' / ')}`);
  }
  if (p.importance.fallback) parts.push(p.importance.fallback);
  return parts.length ? `${p.importance.rule} (${parts.join('; ')})` : p.importance.rule;
}

/** The phases' times, as plan.json records them. */
export function describeTimings(p: PlanFile): string {
  const t = p.timings;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const split = t.sequencesMs !== undefined && t.calibrationMs > 0 ? ` (sequences ${s(t.sequencesMs)}, statistics ${s(t.statisticsMs!)})` : '';
  return `time: calibration ${s(t.calibrationMs)}${split}, importance ${s(t.importanceMs)}, search ${s(t.searchMs)}, correction ${s(t.correctionMs)}, export ${s(t.exportMs)}, total ${s(t.totalMs)}`;
}

function pct(after: number, before: number): string {
  return `${((100 * after) / before).toFixed(1)}%`;
}

function summaryLine(result: PruneResult, label: string, dir: string): string {
  const p = result.planFile;
  return `${label}: ${formatCount(p.params.after)} of ${formatCount(p.params.before)} Attention+FFN parameters (${pct(p.params.after, p.params.before)}), score ${formatNumber(p.score.before)} -> ${formatNumber(p.score.after)}, written to ${dir}`;
}

export function renderPrune(result: PruneResult): string {
  const p: PlanFile = result.planFile;
  const arrow = (x: { before: number; after: number }) => (x.before === x.after ? String(x.before) : `${x.before} -> ${x.after}`);
  const rows = p.layers.map((l) => [
    l.index,
    l.dropped ? 'dropped' : '',
    arrow(l.heads),
    arrow(l.kvHeads),
    arrow(l.ffnWidth),
    `${formatCount(l.params.before)} -> ${formatCount(l.params.after)}`,
    `${formatNumber(l.score.before)} -> ${formatNumber(l.score.after)}`,
  ]);
  const budget = [
    p.budget.params !== undefined ? `params <= ${formatCount(p.budget.params)}` : undefined,
    p.budget.flops !== undefined ? `FLOPs/token <= ${formatCount(p.budget.flops)} at ${p.budget.seqLen} tokens` : undefined,
    p.budget.maxLatencyMs !== undefined ? `latency <= ${p.budget.maxLatencyMs} ms` : undefined,
  ].filter(Boolean);
  const provider = `${p.provider === 'typescript' ? 'TypeScript' : `onnxruntime ${p.provider}`}${p.providerReason ? ` (${p.providerReason})` : ''}`;
  const lines = [
    `${p.source} (${p.family}${p.dtype !== 'fp32' ? `, planned on its ${p.dtype} file` : ''}): budget ${budget.join(', ')}`,
    `Attention+FFN parameters ${formatCount(p.params.before)} -> ${formatCount(p.params.after)} (${pct(p.params.after, p.params.before)}), FLOPs/token ${formatCount(p.flops.before)} -> ${formatCount(p.flops.after)}`,
    `ZeroLM score ${formatNumber(p.score.before)} -> ${formatNumber(p.score.after)} (measure ${p.measure}, alpha ${p.alpha}${p.variant === 'log' ? ', log' : ''})`,
    `search ${p.search.method} (${p.search.evaluations} candidates, seed ${p.search.seed}), importance ${describeImportance(p)}, scored on ${provider}`,
      ...(p.calibration ? [describeCalibration(p.calibration)] : []),
      `correction ${p.correction.method}${describeCorrection(p.correction)}; score of the searched (uncorrected) candidate ${formatNumber(p.score.searched)}`,
      ...describeRuleChanges(p),
      describeTimings(p),
    '',
    formatTable([{ header: 'layer' }, { header: '' }, { header: 'heads' }, { header: 'kv heads' }, { header: 'ffn width' }, { header: 'params' }, { header: 'score' }], rows),
  ];
  if (p.latency) lines.push('', `latency ${formatNumber(p.latency.ms)} ms (limit ${p.latency.maxMs} ms, ${p.latency.checks.length} candidates timed)`);
  if (result.export) {
    lines.push('', `wrote ${result.export.outDir}: ${result.export.files.join(', ')}`);
    lines.push(...renderWeightFiles(p, result.export.skipped));
  } else {
    lines.push('', 'plan only: nothing written');
  }
  return lines.join('\n');
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(2)} MiB`;
}

/** Every weight file written with its dtype and size (and what was re-quantized), and the source files left out. */
function renderWeightFiles(p: PlanFile, skipped: readonly string[]): string[] {
  const rows = (p.files ?? []).map((f) => {
    const notes = [
      f.from === 'pruned' ? '' : f.from,
      f.externalData ? `+ ${f.externalData.file} ${mib(f.externalData.bytes)}` : '',
      f.requantized.length > 0 ? `${f.requantized.length} weights re-quantized (${[...new Set(f.requantized.map((r) => r.reason))].join(', ')})` : '',
    ].filter(Boolean);
    return [f.dtype, f.file, mib(f.bytes), notes.join('; ')];
  });
  const out = ['', formatTable([{ header: 'dtype' }, { header: 'file' }, { header: 'size', numeric: true }, { header: '' }], rows)];
  const left = skipped.filter((f) => f.endsWith('.onnx'));
  if (left.length > 0) out.push(`not written (left out by --dtypes): ${left.join(', ')}`);
  return out;
}
