import { scoreReport, type InitMode, type ScoreReport, type ScoreVariant, type TaskHead } from '@zerolm/core';
import { loadGraph } from '@zerolm/adapters';
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
      .option('dtype', { type: 'string', describe: 'model folders: which ONNX file to read: fp32 (default), q8, fp16', coerce: oneOf('dtype', ['fp32', 'q8', 'fp16'] as const) })
      .option('json', jsonOption) as never,
  handler: async (args) => {
    const graph = await loadGraph(args.input, { dtype: args.dtype as never });
    const report = scoreReport(graph, { measure: args.measure, alpha: args.alpha, variant: args.variant, init: args.init });
    process.stdout.write(args.json ? `${JSON.stringify({ ...report, dtype: args.dtype ?? (graph as { dtype?: string }).dtype })}\n` : `${renderScore(report)}\n`);
  },
};

export function renderScore(report: ScoreReport): string {
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
    `${report.model} (${report.family}), measure ${report.measure}, alpha ${report.alpha}${report.variant === 'log' ? ', log variant' : ''}`,
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
