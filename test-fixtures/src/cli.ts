/**
 * Command line for the fixture generator.
 *
 *     node test-fixtures/dist/cli.js --family llama --layers 2 --hidden 64 --heads 8 --kv-heads 2 \
 *       --ffn 128 --vocab 384 --out /tmp/llama-fixture [--variants q8,fp16] [--plant-head 0:1] ...
 *     node test-fixtures/dist/cli.js --fixture llama-tiny --out DIR     (a named fixture)
 *     node test-fixtures/dist/cli.js --benchmark bert-base --out DIR    (a benchmark shape)
 *     node test-fixtures/dist/cli.js --ensure                          (all named fixtures, in place)
 *     node test-fixtures/dist/cli.js --list
 *
 * Bad input prints one line to stderr and exits with code 2.
 */
import { parseArgs } from 'node:util';
import { BENCHMARK_SPECS, DEFAULT_FIXTURES, FIXTURE_NAMES } from './defaults';
import { ensureFixtures, GENERATED_FIXTURES_DIR } from './ensure';
import { generateModel } from './generate';
import type { Family, ModelSpec, PlantedUnit, Variant } from './spec';

const USAGE =
  'usage: cli.js (--family F --layers N --hidden N --heads N --ffn N --vocab N | --fixture NAME | --benchmark NAME) --out DIR ' +
  '[--kv-heads N] [--head-dim N] [--seed N] [--max-positions N] [--layer-heads a,b] [--layer-kv-heads a,b] [--layer-ffn a,b] ' +
  '[--plant-head L:H] [--plant-kv-group L:G] [--plant-neuron L:N] [--embedding-size N] [--tie-word-embeddings true|false] ' +
  '[--opset 14..17] [--init-std X] [--variants fp16,q8,int8,uint8,q4,q4f16,bnb4] [--external-data] | --ensure | --list';

const OPTIONS = {
  family: { type: 'string' },
  layers: { type: 'string' },
  hidden: { type: 'string' },
  heads: { type: 'string' },
  'kv-heads': { type: 'string' },
  'head-dim': { type: 'string' },
  ffn: { type: 'string' },
  vocab: { type: 'string' },
  seed: { type: 'string' },
  'max-positions': { type: 'string' },
  'layer-heads': { type: 'string' },
  'layer-kv-heads': { type: 'string' },
  'layer-ffn': { type: 'string' },
  'plant-head': { type: 'string', multiple: true },
  'plant-kv-group': { type: 'string', multiple: true },
  'plant-neuron': { type: 'string', multiple: true },
  'embedding-size': { type: 'string' },
  'tie-word-embeddings': { type: 'string' },
  opset: { type: 'string' },
  'init-std': { type: 'string' },
  variants: { type: 'string' },
  'external-data': { type: 'boolean' },
  fixture: { type: 'string' },
  benchmark: { type: 'string' },
  out: { type: 'string' },
  ensure: { type: 'boolean' },
  list: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

class UsageError extends Error {}

function number(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number, got '${value}'`);
  return n;
}

function list(value: string | undefined, flag: string): number[] | undefined {
  return value?.split(',').map((v) => number(v, flag) as number);
}

function units(values: string[] | undefined, flag: string, kind: 'head' | 'kvGroup' | 'neuron'): PlantedUnit[] {
  return (values ?? []).map((v) => {
    const match = /^(\d+):(\d+)$/.exec(v);
    if (!match) throw new UsageError(`--${flag} takes LAYER:INDEX, got '${v}'`);
    return { layer: Number(match[1]), [kind]: Number(match[2]) } as PlantedUnit;
  });
}

function specFromFlags(v: Record<string, string | string[] | boolean | undefined>): ModelSpec {
  const str = (k: string) => v[k] as string | undefined;
  const required = (k: string) => {
    const n = number(str(k), k);
    if (n === undefined) throw new UsageError(`--${k} is required with --family`);
    return n;
  };
  const spec: ModelSpec = {
    family: str('family') as Family,
    layers: required('layers'),
    hidden: required('hidden'),
    heads: required('heads'),
    ffn: required('ffn'),
    vocab: required('vocab'),
  };
  const optional: [keyof ModelSpec, unknown][] = [
    ['kvHeads', number(str('kv-heads'), 'kv-heads')],
    ['headDim', number(str('head-dim'), 'head-dim')],
    ['seed', number(str('seed'), 'seed')],
    ['maxPositions', number(str('max-positions'), 'max-positions')],
    ['layerHeads', list(str('layer-heads'), 'layer-heads')],
    ['layerKvHeads', list(str('layer-kv-heads'), 'layer-kv-heads')],
    ['layerFfn', list(str('layer-ffn'), 'layer-ffn')],
    ['embeddingSize', number(str('embedding-size'), 'embedding-size')],
    ['opset', number(str('opset'), 'opset')],
    ['initStd', number(str('init-std'), 'init-std')],
  ];
  for (const [key, value] of optional) if (value !== undefined) (spec as unknown as Record<string, unknown>)[key] = value;
  const tie = str('tie-word-embeddings');
  if (tie !== undefined) {
    if (tie !== 'true' && tie !== 'false') throw new UsageError(`--tie-word-embeddings takes true or false, got '${tie}'`);
    spec.tieWordEmbeddings = tie === 'true';
  }
  const planted = [
    ...units(v['plant-head'] as string[] | undefined, 'plant-head', 'head'),
    ...units(v['plant-kv-group'] as string[] | undefined, 'plant-kv-group', 'kvGroup'),
    ...units(v['plant-neuron'] as string[] | undefined, 'plant-neuron', 'neuron'),
  ];
  if (planted.length > 0) spec.planted = planted;
  const variants = str('variants');
  if (variants !== undefined) spec.variants = variants.split(',').filter(Boolean) as Variant[];
  return spec;
}

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** Runs the CLI on `argv` (without `node script`); returns the exit code. */
export function runCli(argv: readonly string[], io: CliIo = { out: console.log, err: console.error }): number {
  try {
    const { values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    if (values.list) {
      for (const name of FIXTURE_NAMES) io.out(`${name}\t${JSON.stringify(DEFAULT_FIXTURES[name])}`);
      for (const [name, spec] of Object.entries(BENCHMARK_SPECS)) io.out(`${name}\t${JSON.stringify(spec)}\t(benchmark)`);
      return 0;
    }
    if (values.ensure) {
      const paths = ensureFixtures();
      io.out(`${Object.keys(paths).length} fixtures current in ${GENERATED_FIXTURES_DIR}`);
      return 0;
    }
    const sources = [values.family, values.fixture, values.benchmark].filter((x) => x !== undefined);
    if (sources.length !== 1) throw new UsageError('give exactly one of --family, --fixture, --benchmark');
    if (values.out === undefined) throw new UsageError('--out DIR is required');
    let spec: ModelSpec;
    if (values.fixture !== undefined) {
      spec = (DEFAULT_FIXTURES as Record<string, ModelSpec>)[values.fixture] as ModelSpec;
      if (!spec) throw new UsageError(`unknown fixture '${values.fixture}'; known: ${FIXTURE_NAMES.join(', ')}`);
    } else if (values.benchmark !== undefined) {
      spec = (BENCHMARK_SPECS as Record<string, ModelSpec>)[values.benchmark] as ModelSpec;
      if (!spec) throw new UsageError(`unknown benchmark shape '${values.benchmark}'; known: ${Object.keys(BENCHMARK_SPECS).join(', ')}`);
      if (values.variants !== undefined) spec = { ...spec, variants: values.variants.split(',').filter(Boolean) as Variant[] };
    } else {
      spec = specFromFlags(values);
    }
    if (values['external-data']) spec = { ...spec, externalData: true };
    const started = Date.now();
    const result = generateModel(spec, values.out);
    const total = Object.values(result.files).reduce((a, b) => a + b, 0);
    io.out(`wrote ${result.dir} (${Object.keys(result.files).length} files, ${total} bytes) in ${Date.now() - started} ms`);
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    io.err(`error: ${message.split('\n')[0]}`);
    const badInput =
      error instanceof UsageError ||
      message.startsWith('invalid model spec') ||
      String((error as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
    return badInput ? 2 : 1;
  }
}

if (require.main === module) process.exitCode = runCli(process.argv.slice(2));
