import { scoreReport, type InitMode, type ScoreReport, type ScoreVariant, type TaskHead } from '@zerolm/core';
import { DTYPE_FILES, DTYPES_BY_PRECISION, loadGraph, type DtypeChoice } from '@zerolm/adapters';
import { existsSync, statSync } from 'fs';
import { join } from 'path';
import type { CommandModule } from 'yargs';
import { formatCount, formatNumber, formatTable } from '../output/table';
import { alphaOption, jsonOption, measureOption, oneOf, variantOption } from './options';

interface ScoreArgs {
  input: string;
  measure: string;
  alpha: number;
  variant: ScoreVariant;
  init: InitMode;
  dtype?: string;
  json: boolean;
}

export const scoreCommand: CommandModule<object, ScoreArgs> = {
  command: 'score <input>',
  describe: 'score one model folder or architecture spec with the ZeroLM proxy',
  builder: (y) =>
    y
      .positional('input', { type: 'string', demandOption: true, describe: 'a transformers.js model folder or a spec JSON file' })
      .option('measure', measureOption)
      .option('alpha', alphaOption)
      .option('variant', variantOption)
      .option('init', {
        type: 'string',
        default: 'sampled',
        coerce: oneOf('init', ['sampled', 'expected'] as const),
        describe: 'specs only: draw weights (sampled) or use expected values of the init distribution',
      })
      .option('dtype', {
        type: 'string',
        describe: `model folders: which ONNX file to read: ${DTYPES_BY_PRECISION.join(', ')}, or auto (the most precise present; the default when onnx/model.onnx is absent)`,
        coerce: oneOf('dtype', ['auto', ...DTYPES_BY_PRECISION] as const),
      })
      .option('json', jsonOption) as never,
  handler: async (args) => {
    const folder = existsSync(args.input) && statSync(args.input).isDirectory();
    const requested = (args.dtype ?? (folder && !existsSync(join(args.input, 'onnx', DTYPE_FILES.fp32)) ? 'auto' : undefined)) as DtypeChoice | undefined;
    const graph = await loadGraph(args.input, requested ? { dtype: requested } : {});
    const report = scoreReport(graph, { measure: args.measure, alpha: args.alpha, variant: args.variant, init: args.init });
    const dtype = graph.dtype;
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ ...report, ...(dtype ? { dtype, file: `onnx/${DTYPE_FILES[dtype]}` } : {}) })}\n`);
      return;
    }
    const picked = requested === 'auto' && dtype ? `--dtype auto read onnx/${DTYPE_FILES[dtype]} (${dtype}), the most precise ONNX file present\n\n` : '';
    process.stdout.write(`${picked}${renderScore(report, dtype)}\n`);
  },
};

/** The score table; `dtype` other than fp32 is named in the header. */
export function renderScore(report: ScoreReport, dtype?: string): string {
  const rows = report.layers.map((l) => [
    l.index,
    l.attention.kind,
    l.attention.heads,
    l.attention.kvHeads,
    l.attention.headDim,
    l.attention.capacity,
    l.ffn.width,
    l.ffn.capacity,
  ]);
  const table = formatTable(['layer', 'mixer', 'heads', 'kv', 'head dim', 'attention', 'ffn width', 'ffn'], rows);
  const p = report.params;
  return [
    `${report.model} (${report.family}${dtype && dtype !== 'fp32' ? `, ${dtype}` : ''}), measure ${report.measure}, alpha ${report.alpha}${report.variant === 'log' ? ', log variant' : ''}`,
    '',
    table,
    '',
    `score ${formatNumber(report.score)}  (attention ${formatNumber(report.attention)}, ffn ${formatNumber(report.ffn)})`,
    `params: attention ${formatCount(p.attention)}, ffn ${formatCount(p.ffn)}, attention+ffn ${formatCount(p.modules)}${p.heads !== undefined ? `, heads ${formatCount(p.heads)}` : ''}${p.total !== undefined ? `, total ${formatCount(p.total)}` : ''}`,
    ...(report.heads && report.heads.length > 0 ? [`task heads (not scored, never pruned): ${report.heads.map(describeHead).join('; ')}`] : []),
  ].join('\n');
}

function describeHead(head: TaskHead): string {
  return `${head.kind} ${head.matrices.map((m) => `${m.rows}x${m.cols}`).join(' -> ')} (${formatCount(head.params)})`;
}
