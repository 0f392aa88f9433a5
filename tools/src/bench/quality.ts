/**
 * Pruning quality on trained models: does the planner keep units that matter more than units kept
 * at random? On the two trained decoders in `../shared/models` (or `--models-dir`), at each budget
 * of Attention+FFN parameters, every variant is exported as a real model folder and its held-out
 * perplexity is measured through onnxruntime by the code path `zerolm compare` uses (64-token
 * windows of `heldout.txt`, the models' own protocol):
 *
 * - uniform per-layer widths (every layer keeps the same fraction): unit importance `random`
 *   (median and range over `--seeds` seeds), `magnitude`, and the default rule;
 * - the default rule with the per-layer widths of the ZeroLM search, against uniform widths.
 *
 *   npm run bench:quality [-- --models-dir DIR] [--budgets 0.75,0.5] [--seeds 5] [--max-windows N]
 */
import { compareModels, DEFAULT_IMPORTANCE, listImportances, prune, type SearchMethod } from '@zerolm/planner';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';

export const QUALITY_MODELS = ['kjv-llama-tiny', 'kjv-gpt2-tiny'] as const;

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
  /** What was compared: `unpruned`, `random`, an importance name, or `<importance> + search`. */
  variant: string;
  widths: 'uniform' | 'search' | 'full';
  /** Attention+FFN parameters kept, as a fraction of the full model's. */
  kept: number;
  perplexity: number;
  /** For `random`: every seed's perplexity, ascending. */
  seeds?: number[];
}

function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function runQualityBench(options: QualityOptions): Promise<QualityRow[]> {
  const log = options.log ?? (() => {});
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-quality-'));
  const rows: QualityRow[] = [];
  const rules = [...new Set(['magnitude', DEFAULT_IMPORTANCE])];
  try {
    for (const name of QUALITY_MODELS) {
      const source = path.join(options.modelsDir, name);
      const text = path.join(source, 'heldout.txt');
      if (!fs.existsSync(text)) throw new Error(`no heldout.txt in ${source}`);
      const variants: { dir: string; row: Omit<QualityRow, 'perplexity' | 'kept'> & { seed?: number } }[] = [];
      const keptFraction = new Map<string, number>();
      const make = async (budget: number, importance: string, search: SearchMethod, seed: number, label: string) => {
        const dir = path.join(work, name, `${label}-${budget}-${seed}`);
        const result = await prune(source, { targetParams: budget, importance, search, seed, out: dir });
        keptFraction.set(dir, result.planFile.params.after / result.planFile.params.before);
        return dir;
      };
      for (const budget of options.budgets) {
        for (let seed = 0; seed < options.seeds; seed++) {
          variants.push({ dir: await make(budget, 'random', 'uniform', seed, 'random'), row: { model: name, budget, variant: 'random', widths: 'uniform', seed } });
        }
        for (const rule of rules) {
          variants.push({ dir: await make(budget, rule, 'uniform', 0, rule), row: { model: name, budget, variant: rule, widths: 'uniform' } });
        }
        const rule = DEFAULT_IMPORTANCE;
        variants.push({ dir: await make(budget, rule, 'evolutionary', 0, `${rule}-search`), row: { model: name, budget, variant: `${rule} + search`, widths: 'search' } });
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
      const ppl = report.models.map((m) => (m.fidelity.kind === 'decoder' ? m.fidelity.perplexity : NaN));
      rows.push({ model: name, budget: 1, variant: 'unpruned', widths: 'full', kept: 1, perplexity: ppl[0]! });
      const randoms = new Map<number, number[]>();
      variants.forEach((v, i) => {
        const perplexity = ppl[i + 1]!;
        if (v.row.variant === 'random') {
          const list = randoms.get(v.row.budget) ?? [];
          list.push(perplexity);
          randoms.set(v.row.budget, list);
          return;
        }
        rows.push({ model: v.row.model, budget: v.row.budget, variant: v.row.variant, widths: v.row.widths, kept: keptFraction.get(v.dir)!, perplexity });
      });
      for (const [budget, list] of randoms) {
        const sorted = [...list].sort((a, b) => a - b);
        const dir = variants.find((v) => v.row.variant === 'random' && v.row.budget === budget)!.dir;
        rows.push({ model: name, budget, variant: 'random', widths: 'uniform', kept: keptFraction.get(dir)!, perplexity: median(sorted), seeds: sorted });
      }
      log(`  ${name}: ${report.text.samples} windows of 64 tokens`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

export function formatQualityBench(rows: readonly QualityRow[]): string {
  const lines: string[] = [];
  const fmt = (x: number) => x.toFixed(2);
  for (const model of QUALITY_MODELS) {
    const unpruned = rows.find((r) => r.model === model && r.variant === 'unpruned');
    if (!unpruned) continue;
    lines.push(`${model}: held-out perplexity ${fmt(unpruned.perplexity)} unpruned`);
    const budgets = [...new Set(rows.filter((r) => r.model === model && r.variant !== 'unpruned').map((r) => r.budget))];
    for (const budget of budgets) {
      lines.push(`  ${Math.round(budget * 100)}% of Attention+FFN parameters:`);
      for (const r of rows.filter((x) => x.model === model && x.budget === budget && x.variant !== 'unpruned')) {
        const spread = r.seeds ? ` (median of ${r.seeds.length} seeds, range ${fmt(r.seeds[0]!)}..${fmt(r.seeds[r.seeds.length - 1]!)})` : '';
        lines.push(`    ${`${r.variant}, ${r.widths} widths`.padEnd(34)} ${fmt(r.perplexity).padStart(8)}  kept ${(100 * r.kept).toFixed(1)}%${spread}`);
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
  process.stdout.write(`importance rules: ${listImportances().map((i) => i.name).join(', ')} (default ${DEFAULT_IMPORTANCE})\n`);
  const rows = await runQualityBench({
    modelsDir,
    budgets,
    seeds,
    ...(values['max-windows'] ? { maxWindows: Number(values['max-windows']) } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatQualityBench(rows)}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench:quality: ${(error as Error).message}\n`);
    process.exitCode = 1;
  });
}
