/**
 * Pruning quality on trained models: does the planner keep units that matter more than units kept
 * at random, how does calibrating on the model's own samples compare with calibrating on real
 * text, and how does the default compare with published methods? On the trained models in
 * `../shared/models` (or `--models-dir`), at each budget of Attention+FFN parameters, every
 * variant is exported as a real model folder and measured through onnxruntime on its held-out
 * text:
 *
 * - decoders (kjv-llama-tiny, kjv-gpt2-tiny): perplexity by the code path `zerolm compare` uses
 *   (64-token windows of `heldout.txt`, the models' own protocol);
 * - the encoder (kjv-bert-tiny): masked-LM pseudo-perplexity as its `eval.json` defines it
 *   (`maskedLmPerplexity`, which reproduces the unpruned figure), and the mean cosine of its
 *   mean-pooled hidden states to the unpruned model's on each line of `heldout.txt`.
 *
 * Variants (each exported with the corrections listed, side by side in the table):
 * - `random` (median and range over `--seeds` seeds) and `magnitude`, uniform widths;
 * - the default rule (`self-generated`: structured OBS for neurons, the output change for heads)
 *   calibrated on the model's own samples (decoders: generated from BOS; the encoder: sampled from
 *   its masked-LM head) and on the model folder's `calibration.txt` (encoder: also on uniform
 *   tokens), with uniform widths and with the widths of the ZeroLM search (decoders: also under
 *   the paper's `msv`);
 * - Wanda-sp (uniform widths, as its code prunes) and FLAP (its global adaptive structure, with
 *   its bias compensation as a third correction), on both calibration sources;
 * - the default rule as real-size models get it, at the search's widths with the refit: FFN
 *   neurons by OBS in 64 steps (`--ffn-importance chunked-obs`, what FFNs wider than 1024 neurons
 *   get), attention units by block OBS (`--attention-importance block-obs`, what models too large
 *   to run once per candidate get), both together, and the diagonal energy that wide FFNs used to
 *   fall back to (`--ffn-importance energy`).
 *
 *   npm run bench:quality [-- --models-dir DIR] [--models a,b] [--budgets 0.75,0.5] [--seeds 5] [--max-windows N]
 */
import {
  type AttentionImportanceMethod,
  DEFAULT_CORRECTION,
  DEFAULT_IMPORTANCE,
  DEFAULT_PRUNE_MEASURE,
  listImportances,
  prune,
  type CalibrationSource,
  type CorrectionMethod,
  type FfnImportanceMethod,
  type PruneOptions,
} from '@zerolm/planner';
import { compareModels, maskedLmPerplexity, maskedLmText } from '@zerolm/compare';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { parseArgs } from 'util';

export const DECODER_MODELS = ['kjv-llama-tiny', 'kjv-gpt2-tiny'] as const;
export const ENCODER_MODELS = ['kjv-bert-tiny'] as const;
export const QUALITY_MODELS = [...DECODER_MODELS, ...ENCODER_MODELS] as const;
export type QualityModel = (typeof QUALITY_MODELS)[number];

/** Corrections in table order. */
export const CORRECTION_COLUMNS: readonly CorrectionMethod[] = ['none', 'bias', 'refit'];

export interface QualityOptions {
  modelsDir: string;
  models?: readonly QualityModel[];
  budgets: readonly number[];
  seeds: number;
  /** Evaluate at most this many 64-token windows of heldout.txt (decoders; all by default). */
  maxWindows?: number;
  log?: (line: string) => void;
}

export interface QualityRow {
  model: QualityModel;
  budget: number;
  /** The importance rule and the methods forced on it (`unpruned` for the source model). */
  variant: string;
  /** Where the calibration sequences came from (`-` for the unpruned model). */
  calibration: CalibrationSource | '-';
  /** `uniform`, `search (<measure>)`, `global` or `full`. */
  widths: string;
  correction: CorrectionMethod | 'full';
  /** Attention+FFN parameters kept, as a fraction of the full model's. */
  kept: number;
  /** Held-out perplexity (decoders) or masked-LM pseudo-perplexity (the encoder); for random the median. */
  perplexity: number;
  /** Encoder: mean cosine of mean-pooled hidden states to the unpruned model's (for random the median). */
  cosine?: number;
  /** For `random`: every seed's perplexity, ascending. */
  seeds?: number[];
  /** Seconds `prune` took (plan, calibration, correction and export; for random the median). */
  seconds: number;
}

/** What `runQualityBench` measured besides the rows. */
export interface QualityContext {
  /** Decoders: 64-token windows; the encoder: masked tokens and lines. */
  evaluated: Record<string, string>;
}

/** `self-generated`'s FFN and attention methods forced for a row. */
interface ForcedRules {
  ffnImportance?: FfnImportanceMethod;
  attentionImportance?: AttentionImportanceMethod;
}

/** The rules real-size models get (and the old fallback), forced on the trained models. */
const REAL_SIZE_RULES: readonly ForcedRules[] = [
  { ffnImportance: 'chunked-obs' },
  { attentionImportance: 'block-obs' },
  { ffnImportance: 'chunked-obs', attentionImportance: 'block-obs' },
  { ffnImportance: 'energy' },
];

interface VariantSpec {
  importance: string;
  rules?: ForcedRules;
  calibration: CalibrationSource;
  /** Absent: uniform widths; a measure: the ZeroLM search under it; `global`: the rule's own global ranking. */
  widths: 'uniform' | 'global' | { measure: string };
  corrections: readonly CorrectionMethod[];
  seeds?: number;
}

function variantSpecs(encoder: boolean, seeds: number): VariantSpec[] {
  const both: CorrectionMethod[] = ['none', 'refit'];
  const search = { measure: DEFAULT_PRUNE_MEASURE };
  const sources: CalibrationSource[] = encoder ? ['self-generated', 'text', 'uniform'] : ['self-generated', 'text'];
  return [
    { importance: 'random', calibration: 'self-generated', widths: 'uniform', corrections: both, seeds },
    { importance: 'magnitude', calibration: 'self-generated', widths: 'uniform', corrections: both },
    ...sources.flatMap((calibration): VariantSpec[] => [
      { importance: DEFAULT_IMPORTANCE, calibration, widths: 'uniform', corrections: both },
      { importance: DEFAULT_IMPORTANCE, calibration, widths: search, corrections: both },
    ]),
    ...(encoder ? [] : [{ importance: DEFAULT_IMPORTANCE, calibration: 'self-generated' as const, widths: { measure: 'msv' }, corrections: ['refit' as const] }]),
    ...(['self-generated', 'text'] as const).flatMap((calibration): VariantSpec[] => [
      { importance: 'wanda-sp', calibration, widths: 'uniform', corrections: both },
      { importance: 'flap', calibration, widths: 'global', corrections: ['none', 'bias', 'refit'] },
    ]),
    ...REAL_SIZE_RULES.map((rules): VariantSpec => ({ importance: DEFAULT_IMPORTANCE, rules, calibration: 'self-generated', widths: search, corrections: [DEFAULT_CORRECTION] })),
  ];
}

/** The importance column: the rule, and the methods forced on it. */
function variantLabel(spec: VariantSpec): string {
  const forced = [
    spec.rules?.ffnImportance === 'chunked-obs' ? 'FFN OBS in 64 steps' : spec.rules?.ffnImportance === 'energy' ? 'FFN energy' : undefined,
    spec.rules?.attentionImportance === 'block-obs' ? 'attention block OBS' : undefined,
  ].filter(Boolean);
  return forced.length ? `${spec.importance}, ${forced.join(', ')}` : spec.importance;
}

function widthsLabel(widths: VariantSpec['widths']): string {
  return typeof widths === 'string' ? widths : `search (${widths.measure})`;
}

function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Exported {
  dir: string;
  budget: number;
  spec: VariantSpec;
  correction: CorrectionMethod;
  kept: number;
  seconds: number;
}

/** Every variant of one model and budget, pruned and exported into `work`. */
async function exportVariants(source: string, work: string, budget: number, specs: readonly VariantSpec[]): Promise<Exported[]> {
  const out: Exported[] = [];
  for (const spec of specs) {
    for (const correction of spec.corrections) {
      for (let seed = 0; seed < (spec.seeds ?? 1); seed++) {
        const widths = widthsLabel(spec.widths).replace(/[^a-z0-9-]+/g, '');
        const dir = path.join(work, `${variantLabel(spec).replace(/[^a-z0-9-]+/gi, '_')}-${spec.calibration}-${widths}-${correction}-${budget}-${seed}`);
        const options: PruneOptions = {
          targetParams: budget,
          importance: spec.importance,
          search: spec.widths === 'uniform' ? 'uniform' : spec.widths === 'global' ? 'global' : 'evolutionary',
          ...(typeof spec.widths === 'object' ? { measure: spec.widths.measure } : {}),
          seed,
          correction,
          calibration: spec.calibration === 'text' ? { source: 'text', text: path.join(source, 'calibration.txt') } : { source: spec.calibration },
          out: dir,
          ...spec.rules,
        };
        const started = performance.now();
        const result = await prune(source, options);
        out.push({ dir, budget, spec, correction, kept: result.planFile.params.after / result.planFile.params.before, seconds: (performance.now() - started) / 1000 });
      }
    }
  }
  return out;
}

export async function runQualityBench(options: QualityOptions, context: QualityContext = { evaluated: {} }): Promise<QualityRow[]> {
  const log = options.log ?? (() => {});
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-quality-'));
  const rows: QualityRow[] = [];
  try {
    for (const name of options.models ?? QUALITY_MODELS) {
      const source = path.join(options.modelsDir, name);
      const encoder = (ENCODER_MODELS as readonly string[]).includes(name);
      for (const file of ['heldout.txt', 'calibration.txt']) if (!fs.existsSync(path.join(source, file))) throw new Error(`no ${file} in ${source}`);
      const heldout = path.join(source, 'heldout.txt');
      const work = path.join(root, name);
      const exported: Exported[] = [];
      for (const budget of options.budgets) {
        exported.push(...(await exportVariants(source, work, budget, variantSpecs(encoder, options.seeds))));
        log(`  ${name} ${budget}: exported ${exported.length} variants so far`);
      }
      // One comparison per model: perplexity for decoders, hidden-state cosine for the encoder.
      const report = await compareModels(source, exported.map((v) => v.dir), {
        text: heldout,
        seqLen: 64,
        batch: 16,
        runs: 1,
        warmup: 0,
        ...(!encoder && options.maxWindows !== undefined ? { maxSamples: options.maxWindows } : {}),
      });
      let perplexities: number[];
      let cosines: (number | undefined)[];
      if (encoder) {
        const masked = await maskedLmText(source, heldout);
        perplexities = [];
        for (const dir of [source, ...exported.map((v) => v.dir)]) perplexities.push((await maskedLmPerplexity(dir, masked)).perplexity);
        cosines = report.models.map((m) => (m.fidelity.kind === 'encoder' ? m.fidelity.sentenceCosine : undefined));
        context.evaluated[name] = `${masked.tokens} masked tokens of ${masked.streamTokens}; cosine over ${report.text.samples} lines`;
      } else {
        perplexities = report.models.map((m) => (m.fidelity.kind === 'decoder' ? m.fidelity.perplexity : NaN));
        cosines = [];
        context.evaluated[name] = `${report.text.samples} windows of 64 tokens`;
      }
      rows.push({ model: name, budget: 1, variant: 'unpruned', calibration: '-', widths: 'full', correction: 'full', kept: 1, perplexity: perplexities[0]!, ...(encoder ? { cosine: cosines[0]! } : {}), seconds: 0 });
      const groups = new Map<string, { variant: Exported; perplexity: number; cosine?: number }[]>();
      exported.forEach((v, i) => {
        const key = JSON.stringify([v.budget, variantLabel(v.spec), v.spec.calibration, widthsLabel(v.spec.widths), v.correction]);
        groups.set(key, [...(groups.get(key) ?? []), { variant: v, perplexity: perplexities[i + 1]!, ...(encoder ? { cosine: cosines[i + 1]! } : {}) }]);
      });
      for (const members of groups.values()) {
        const v = members[0]!.variant;
        const sorted = members.map((m) => m.perplexity).sort((a, b) => a - b);
        const cosine = encoder ? median(members.map((m) => m.cosine!).sort((a, b) => a - b)) : undefined;
        rows.push({
          model: name,
          budget: v.budget,
          variant: variantLabel(v.spec),
          calibration: v.spec.calibration,
          widths: widthsLabel(v.spec.widths),
          correction: v.correction,
          kept: v.kept,
          perplexity: median(sorted),
          ...(cosine === undefined ? {} : { cosine }),
          ...(members.length > 1 ? { seeds: sorted } : {}),
          seconds: median(members.map((m) => m.variant.seconds).sort((a, b) => a - b)),
        });
      }
      log(`  ${name}: ${context.evaluated[name]}`);
      fs.rmSync(work, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

const fmt = (x: number) => x.toFixed(2);

function rowLabel(r: QualityRow): string {
  if (r.variant === 'random') return `random (median [min-max] of ${r.seeds?.length ?? 1} seeds)`;
  if (r.variant === DEFAULT_IMPORTANCE) return `${r.variant} (default)`;
  return r.variant;
}

/** Markdown tables: decoders (perplexity), then the encoder (pseudo-perplexity and cosine); corrections side by side. */
export function formatQualityBench(rows: readonly QualityRow[], context?: QualityContext): string {
  const cell = (r: QualityRow | undefined) => {
    if (!r) return '-';
    const value = r.seeds ? `${fmt(r.perplexity)} [${fmt(r.seeds[0]!)}-${fmt(r.seeds[r.seeds.length - 1]!)}]` : fmt(r.perplexity);
    return r.cosine === undefined ? value : `${value} (${r.cosine.toFixed(4)})`;
  };
  const out: string[] = [];
  for (const encoder of [false, true]) {
    const models = (encoder ? ENCODER_MODELS : DECODER_MODELS) as readonly string[];
    const here = rows.filter((r) => models.includes(r.model));
    if (here.length === 0) continue;
    if (out.length > 0) out.push('');
    out.push(
      encoder
        ? 'Encoder: masked-LM pseudo-perplexity on heldout.txt (as eval.json defines it), in parentheses the mean cosine of mean-pooled hidden states to the unpruned model'
        : 'Decoders: held-out perplexity (64-token windows of heldout.txt)',
      '',
      `| model | budget | importance | calibration | widths | kept | ${CORRECTION_COLUMNS.map((c) => `correction ${c}`).join(' | ')} | prune s |`,
      `|---|---|---|---|---|---|${CORRECTION_COLUMNS.map(() => '---|').join('')}---|`,
    );
    for (const model of models) {
      const unpruned = here.find((r) => r.model === model && r.variant === 'unpruned');
      if (!unpruned) continue;
      const evaluated = context?.evaluated[model];
      out.push(`| ${model} | 100% | unpruned${evaluated ? ` (${evaluated})` : ''} | - | full | 100% | ${CORRECTION_COLUMNS.map(() => cell(unpruned)).join(' | ')} | |`);
      const budgets = [...new Set(here.filter((r) => r.model === model && r.variant !== 'unpruned').map((r) => r.budget))];
      for (const budget of budgets) {
        const block = here.filter((r) => r.model === model && r.budget === budget && r.variant !== 'unpruned');
        const keys = [...new Set(block.map((r) => JSON.stringify([r.variant, r.calibration, r.widths])))];
        for (const key of keys) {
          const [variant, calibration, widths] = JSON.parse(key) as [string, string, string];
          const pick = (c: CorrectionMethod) => block.find((r) => r.variant === variant && r.calibration === calibration && r.widths === widths && r.correction === c);
          const any = CORRECTION_COLUMNS.map(pick).find((r) => r)!;
          const seconds = Math.max(...CORRECTION_COLUMNS.map((c) => pick(c)?.seconds ?? 0));
          const shownCalibration = variant === 'magnitude' || variant === 'random' ? `${calibration} (refit only)` : calibration;
          out.push(
            `| ${model} | ${Math.round(budget * 100)}% | ${rowLabel(any)} | ${shownCalibration} | ${widths} | ${(100 * any.kept).toFixed(1)}% | ${CORRECTION_COLUMNS.map((c) => cell(pick(c))).join(' | ')} | ${seconds.toFixed(1)} |`,
          );
        }
      }
    }
  }
  return out.join('\n');
}

/** The issue's goals, each with the figures it compares and whether it is met. */
export function qualityGoals(rows: readonly QualityRow[]): string[] {
  const find = (model: string, budget: number, variant: string, calibration: string, widths: string, correction: CorrectionMethod) =>
    rows.find((r) => r.model === model && r.budget === budget && r.variant === variant && r.calibration === calibration && r.widths === widths && r.correction === correction);
  const search = `search (${DEFAULT_PRUNE_MEASURE})`;
  const lines: string[] = [];
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const budgets = [...new Set(rows.filter((r) => r.variant !== 'unpruned').map((r) => r.budget))].sort((a, b) => b - a);
  const pct = (b: number) => `${Math.round(b * 100)}%`;
  for (const model of ENCODER_MODELS) {
    for (const budget of budgets) {
      const ours = find(model, budget, DEFAULT_IMPORTANCE, 'self-generated', search, DEFAULT_CORRECTION);
      const random = find(model, budget, 'random', 'self-generated', 'uniform', DEFAULT_CORRECTION);
      if (!ours || !random) continue;
      lines.push(`encoder default beats the random median, ${model} ${pct(budget)}: ${fmt(ours.perplexity)} vs ${fmt(random.perplexity)} (refit both): ${verdict(ours.perplexity < random.perplexity)}`);
    }
  }
  for (const model of QUALITY_MODELS) {
    const budget = budgets.find((b) => b === 0.75) ?? budgets[0]!;
    const own = find(model, budget, DEFAULT_IMPORTANCE, 'self-generated', search, DEFAULT_CORRECTION);
    const text = find(model, budget, DEFAULT_IMPORTANCE, 'text', search, DEFAULT_CORRECTION);
    if (!own || !text) continue;
    const ratio = own.perplexity / text.perplexity - 1;
    lines.push(
      `self-generated within 5% of text calibration, ${model} ${pct(budget)}: ${fmt(own.perplexity)} vs ${fmt(text.perplexity)} (${ratio >= 0 ? '+' : ''}${(100 * ratio).toFixed(1)}%): ${verdict(ratio <= 0.05)}`,
    );
  }
  for (const model of QUALITY_MODELS) {
    for (const budget of budgets) {
      for (const calibration of ['self-generated', 'text'] as const) {
        const ours = find(model, budget, DEFAULT_IMPORTANCE, calibration, search, DEFAULT_CORRECTION);
        if (!ours) continue;
        const wanda = rows.filter((r) => r.model === model && r.budget === budget && r.variant === 'wanda-sp' && r.calibration === calibration);
        const flap = rows.filter((r) => r.model === model && r.budget === budget && r.variant === 'flap' && r.calibration === calibration);
        if (wanda.length === 0 || flap.length === 0) continue;
        const best = (list: QualityRow[]) => list.reduce((a, b) => (b.perplexity < a.perplexity ? b : a));
        const asPublished = [find(model, budget, 'wanda-sp', calibration, 'uniform', 'none'), find(model, budget, 'flap', calibration, 'global', 'bias')];
        const bestOf = [best(wanda), best(flap)];
        const ok = bestOf.every((r) => ours.perplexity <= r.perplexity);
        lines.push(
          `default at or below Wanda-sp and FLAP, ${model} ${pct(budget)} ${calibration} calibration: ${fmt(ours.perplexity)} vs Wanda-sp ${fmt(asPublished[0]!.perplexity)} as published ` +
            `(best ${fmt(bestOf[0]!.perplexity)}, correction ${bestOf[0]!.correction}), FLAP ${fmt(asPublished[1]!.perplexity)} as published (best ${fmt(bestOf[1]!.perplexity)}, correction ${bestOf[1]!.correction}): ${verdict(ok)}`,
        );
      }
    }
  }
  return lines;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'models-dir': { type: 'string' },
      models: { type: 'string' },
      budgets: { type: 'string', default: '0.75,0.5' },
      seeds: { type: 'string', default: '5' },
      'max-windows': { type: 'string' },
    },
  });
  const modelsDir = path.resolve(
    values['models-dir'] ?? (process.env['ZEROLM_SHARED_DIR'] ? path.join(process.env['ZEROLM_SHARED_DIR'], 'models') : path.join(__dirname, '../../../../shared/models')),
  );
  const models = (values.models?.split(',').map((m) => m.trim()) ?? [...QUALITY_MODELS]) as QualityModel[];
  const unknown = models.filter((m) => !(QUALITY_MODELS as readonly string[]).includes(m));
  if (unknown.length > 0) throw new Error(`unknown model ${unknown.join(', ')} (known: ${QUALITY_MODELS.join(', ')})`);
  const missing = models.filter((m) => !fs.existsSync(path.join(modelsDir, m)));
  if (missing.length > 0) {
    process.stdout.write(`quality benchmark skipped: the trained models (${missing.join(', ')}) are not in ${modelsDir} (--models-dir)\n`);
    return;
  }
  const budgets = values.budgets!.split(',').map(Number);
  const seeds = Number(values.seeds);
  process.stdout.write(
    `importance rules: ${listImportances().map((i) => i.name).join(', ')} (default ${DEFAULT_IMPORTANCE}); corrections: ${CORRECTION_COLUMNS.join(', ')} (default ${DEFAULT_CORRECTION}); calibration: self-generated (default), text (the model folder's calibration.txt), uniform\n`,
  );
  const started = performance.now();
  const context: QualityContext = { evaluated: {} };
  const rows = await runQualityBench(
    {
      modelsDir,
      models,
      budgets,
      seeds,
      ...(values['max-windows'] ? { maxWindows: Number(values['max-windows']) } : {}),
      log: (line) => process.stderr.write(`${line}\n`),
    },
    context,
  );
  process.stdout.write(`${formatQualityBench(rows, context)}\n\n`);
  for (const line of qualityGoals(rows)) process.stdout.write(`${line}\n`);
  process.stdout.write(`(${((performance.now() - started) / 1000).toFixed(0)} s in all)\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench:quality: ${(error as Error).message}\n`);
    process.exitCode = 1;
  });
}
