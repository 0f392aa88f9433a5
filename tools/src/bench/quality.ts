/**
 * Pruning quality on trained models: does the planner keep units that matter more than units kept
 * at random? On the two trained decoders in `../shared/models` (or `--models-dir`), at each budget
 * of Attention+FFN parameters, every variant is exported as a real model folder and its held-out
 * perplexity is measured through onnxruntime by the code path `zerolm compare` uses (64-token
 * windows of `heldout.txt`, the models' own protocol):
 *
 * - uniform per-layer widths (the planner's `uniform` search: every layer keeps the same counts):
 *   unit importance `random` (median and range over `--seeds` seeds), `magnitude`, and the default
 *   rule, each with `--correction none` and with the default correction (`refit`);
 * - the default rule with the per-layer widths of the ZeroLM search, under the planner's default
 *   measure (`nuclear-bound`) and under the paper's `msv`, against uniform widths, with the
 *   default correction;
 * - the default rule as real-size models get it, at the search's widths with the refit: FFN
 *   neurons by OBS in 64 steps (`--ffn-importance chunked-obs`, what FFNs wider than 1024 neurons
 *   get), attention units by block OBS (`--attention-importance block-obs`, what decoders too large
 *   to run once per candidate get), both together, and the diagonal energy that wide FFNs used to
 *   fall back to (`--ffn-importance energy`).
 *
 *   npm run bench:quality [-- --models-dir DIR] [--budgets 0.75,0.5] [--seeds 5] [--max-windows N]
 */
import {
  type AttentionImportanceMethod,
  DEFAULT_CORRECTION,
  type FfnImportanceMethod,
  DEFAULT_IMPORTANCE,
  DEFAULT_PRUNE_MEASURE,
  listImportances,
  prune,
  type CorrectionMethod,
  type SearchMethod,
} from '@zerolm/planner';
import { compareModels } from '@zerolm/compare';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { parseArgs } from 'util';

export const QUALITY_MODELS = ['kjv-llama-tiny', 'kjv-gpt2-tiny'] as const;

/** `self-generated`'s FFN and attention methods forced for a row. */
interface SelfGeneratedRules {
  ffnImportance?: FfnImportanceMethod;
  attentionImportance?: AttentionImportanceMethod;
}

/** The rules real-size models get (and the old fallback), forced on the trained models. */
const REAL_SIZE_RULES: readonly SelfGeneratedRules[] = [
  { ffnImportance: 'chunked-obs' },
  { attentionImportance: 'block-obs' },
  { ffnImportance: 'chunked-obs', attentionImportance: 'block-obs' },
  { ffnImportance: 'energy' },
];

/** The importance column: the rule, and the methods forced on it. */
function ruleLabel(importance: string, rules: SelfGeneratedRules): string {
  const forced = [
    rules.ffnImportance === 'chunked-obs' ? 'FFN OBS in 64 steps' : rules.ffnImportance === 'energy' ? 'FFN energy' : undefined,
    rules.attentionImportance === 'block-obs' ? 'attention block OBS' : undefined,
  ].filter(Boolean);
  return forced.length ? `${importance}, ${forced.join(', ')}` : importance;
}
const CORRECTIONS: readonly CorrectionMethod[] = ['none', 'refit'];

export interface QualityOptions {
  modelsDir: string;
  budgets: readonly number[];
  seeds: number;
  /** Evaluate at most this many 64-token windows of heldout.txt (all by default). */
  maxWindows?: number;
  log?: (line: string) => void;
}

export interface QualityRow {
  model: string;
  budget: number;
  /** The importance rule (`unpruned` for the source model). */
  variant: string;
  /** `uniform`, `search (<measure>)` (the ZeroLM search's widths under that measure) or `full`. */
  widths: string;
  correction: CorrectionMethod | 'full';
  /** Attention+FFN parameters kept, as a fraction of the full model's. */
  kept: number;
  perplexity: number;
  /** For `random`: every seed's perplexity, ascending. */
  seeds?: number[];
  /** Seconds `prune` took (plan, calibration, correction and export; for random the median). */
  seconds: number;
}

/** What `runQualityBench` measured besides the rows. */
export interface QualityContext {
  windows: Record<string, number>;
}

function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Variant {
  dir: string;
  budget: number;
  importance: string;
  widths: string;
  correction: CorrectionMethod;
  kept: number;
  seconds: number;
}

export async function runQualityBench(options: QualityOptions, context: QualityContext = { windows: {} }): Promise<QualityRow[]> {
  const log = options.log ?? (() => {});
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-quality-'));
  const rows: QualityRow[] = [];
  const rules = [...new Set(['magnitude', DEFAULT_IMPORTANCE])];
  try {
    for (const name of QUALITY_MODELS) {
      const source = path.join(options.modelsDir, name);
      const text = path.join(source, 'heldout.txt');
      if (!fs.existsSync(text)) throw new Error(`no heldout.txt in ${source}`);
      const variants: Variant[] = [];
      /** `searchMeasure`: the ZeroLM search's widths under that measure; absent: uniform widths. */
      const make = async (budget: number, importance: string, correction: CorrectionMethod, seed: number, searchMeasure?: string, rules: SelfGeneratedRules = {}) => {
        const widths = searchMeasure === undefined ? 'uniform' : `search (${searchMeasure})`;
        const label = ruleLabel(importance, rules);
        const dir = path.join(work, name, `${label.replace(/[^a-z0-9-]+/gi, '_')}-${searchMeasure ?? 'uniform'}-${correction}-${budget}-${seed}`);
        const search: SearchMethod = searchMeasure === undefined ? 'uniform' : 'evolutionary';
        const started = performance.now();
        const result = await prune(source, { targetParams: budget, importance, search, seed, correction, out: dir, ...(searchMeasure ? { measure: searchMeasure } : {}), ...rules });
        variants.push({
          dir,
          budget,
          importance: label,
          widths,
          correction,
          kept: result.planFile.params.after / result.planFile.params.before,
          seconds: (performance.now() - started) / 1000,
        });
      };
      for (const budget of options.budgets) {
        for (const correction of CORRECTIONS) {
          for (let seed = 0; seed < options.seeds; seed++) await make(budget, 'random', correction, seed);
          for (const rule of rules) await make(budget, rule, correction, 0);
        }
        for (const measure of new Set([DEFAULT_PRUNE_MEASURE, 'msv'])) await make(budget, DEFAULT_IMPORTANCE, DEFAULT_CORRECTION, 0, measure);
        for (const rules of REAL_SIZE_RULES) await make(budget, DEFAULT_IMPORTANCE, DEFAULT_CORRECTION, 0, DEFAULT_PRUNE_MEASURE, rules);
        log(`  ${name} ${budget}: exported ${variants.length} variants so far`);
      }
      const report = await compareModels(source, variants.map((v) => v.dir), {
        text,
        seqLen: 64,
        batch: 16,
        runs: 1,
        warmup: 0,
        ...(options.maxWindows === undefined ? {} : { maxSamples: options.maxWindows }),
      });
      context.windows[name] = report.text.samples;
      const ppl = report.models.map((m) => (m.fidelity.kind === 'decoder' ? m.fidelity.perplexity : NaN));
      rows.push({ model: name, budget: 1, variant: 'unpruned', widths: 'full', correction: 'full', kept: 1, perplexity: ppl[0]!, seconds: 0 });
      const groups = new Map<string, { variant: Variant; perplexity: number }[]>();
      variants.forEach((v, i) => {
        const key = JSON.stringify([v.budget, v.importance, v.widths, v.correction]);
        groups.set(key, [...(groups.get(key) ?? []), { variant: v, perplexity: ppl[i + 1]! }]);
      });
      for (const members of groups.values()) {
        const v = members[0]!.variant;
        const sorted = members.map((m) => m.perplexity).sort((a, b) => a - b);
        const seconds = median(members.map((m) => m.variant.seconds).sort((a, b) => a - b));
        rows.push({
          model: name,
          budget: v.budget,
          variant: v.importance,
          widths: v.widths,
          correction: v.correction,
          kept: v.kept,
          perplexity: median(sorted),
          ...(members.length > 1 ? { seeds: sorted } : {}),
          seconds,
        });
      }
      log(`  ${name}: ${report.text.samples} windows of 64 tokens`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

/** A markdown table: one line per model, budget, rule and widths; the two corrections side by side. */
export function formatQualityBench(rows: readonly QualityRow[], context?: QualityContext): string {
  const fmt = (x: number) => x.toFixed(2);
  const cell = (r: QualityRow | undefined) =>
    !r ? '-' : r.seeds ? `${fmt(r.perplexity)} [${fmt(r.seeds[0]!)}-${fmt(r.seeds[r.seeds.length - 1]!)}]` : fmt(r.perplexity);
  const lines = [
    '| model | budget | importance | widths | kept | correction none | correction refit | prune s |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const model of QUALITY_MODELS) {
    const unpruned = rows.find((r) => r.model === model && r.variant === 'unpruned');
    if (!unpruned) continue;
    const windows = context?.windows[model];
    lines.push(`| ${model} | 100% | unpruned${windows ? ` (${windows} windows)` : ''} | full | 100% | ${fmt(unpruned.perplexity)} | ${fmt(unpruned.perplexity)} | |`);
    const budgets = [...new Set(rows.filter((r) => r.model === model && r.variant !== 'unpruned').map((r) => r.budget))];
    for (const budget of budgets) {
      const here = rows.filter((r) => r.model === model && r.budget === budget && r.variant !== 'unpruned');
      const keys = [...new Set(here.map((r) => JSON.stringify([r.variant, r.widths])))];
      for (const key of keys) {
        const [variant, widths] = JSON.parse(key) as [string, string];
        const pick = (correction: CorrectionMethod) => here.find((r) => r.variant === variant && r.widths === widths && r.correction === correction);
        const any = pick('refit') ?? pick('none')!;
        const label = variant === 'random' ? `random (median [min-max] of ${any.seeds?.length ?? 1} seeds)` : variant === DEFAULT_IMPORTANCE ? `${variant} (default)` : variant;
        const seconds = Math.max(pick('none')?.seconds ?? 0, pick('refit')?.seconds ?? 0);
        lines.push(
          `| ${model} | ${Math.round(budget * 100)}% | ${label} | ${widths} | ${(100 * any.kept).toFixed(1)}% | ${cell(pick('none'))} | ${cell(pick('refit'))} | ${seconds.toFixed(1)} |`,
        );
      }
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'models-dir': { type: 'string' },
      budgets: { type: 'string', default: '0.75,0.5' },
      seeds: { type: 'string', default: '5' },
      'max-windows': { type: 'string' },
    },
  });
  const modelsDir = path.resolve(values['models-dir'] ?? process.env['ZEROLM_SHARED_DIR'] ? path.join(process.env['ZEROLM_SHARED_DIR']!, 'models') : path.join(__dirname, '../../../../shared/models'));
  if (!QUALITY_MODELS.every((m) => fs.existsSync(path.join(modelsDir, m)))) {
    process.stdout.write(`quality benchmark skipped: the trained models (${QUALITY_MODELS.join(', ')}) are not in ${modelsDir} (--models-dir)\n`);
    return;
  }
  const budgets = values.budgets!.split(',').map(Number);
  const seeds = Number(values.seeds);
  process.stdout.write(`importance rules: ${listImportances().map((i) => i.name).join(', ')} (default ${DEFAULT_IMPORTANCE}); corrections: none, refit (default ${DEFAULT_CORRECTION})\n`);
  const started = performance.now();
  const context: QualityContext = { windows: {} };
  const rows = await runQualityBench(
    {
      modelsDir,
      budgets,
      seeds,
      ...(values['max-windows'] ? { maxWindows: Number(values['max-windows']) } : {}),
      log: (line) => process.stderr.write(`${line}\n`),
    },
    context,
  );
  process.stdout.write(`${formatQualityBench(rows, context)}\n`);
  process.stdout.write(`(held-out perplexity, 64-token windows of heldout.txt; ${((performance.now() - started) / 1000).toFixed(0)} s in all)\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench:quality: ${(error as Error).message}\n`);
    process.exitCode = 1;
  });
}
