/**
 * The command line on every weight format: `score --dtype` for each dtype and `auto` (the
 * default without onnx/model.onnx, saying which file it read), `prune --dtypes` choosing the
 * files written and listing each with its dtype and size, and corrupt packed weights ending in
 * one error line, exit code 2 and nothing written.
 */
import { DTYPE_FILES, DTYPES_BY_PRECISION } from '@zerolm/adapters';
import { decodeModel, encodeModel, GraphIndex, loadModel, saveModel } from '@zerolm/onnx';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expectCleanError, runCli } from './run-cli';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-cli-formats-'));
  ensureFixtures(['llama-formats']);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A copy of llama-formats holding only `keep`. */
function only(name: string, keep: readonly string[]): string {
  const copy = path.join(dir, name);
  fs.cpSync(fixturePath('llama-formats'), copy, { recursive: true });
  for (const dtype of DTYPES_BY_PRECISION) if (!keep.includes(dtype)) fs.rmSync(path.join(copy, 'onnx', DTYPE_FILES[dtype]));
  return copy;
}

test('score --dtype reads each file; the scores agree with fp32 within the format rounding', () => {
  const fp32 = JSON.parse(runCli(['score', fixturePath('llama-formats'), '--json']).stdout);
  for (const dtype of DTYPES_BY_PRECISION) {
    const result = runCli(['score', fixturePath('llama-formats'), '--json', '--dtype', dtype]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ dtype, file: `onnx/${DTYPE_FILES[dtype]}` });
    expect(Math.abs(report.score / fp32.score - 1)).toBeLessThan(dtype.includes('4') ? 0.05 : 0.02);
  }
  const table = runCli(['score', fixturePath('llama-formats'), '--dtype', 'q4']).stdout;
  expect(table.split('\n')[0]).toMatch(/llama-formats \(llama, q4\), measure msv/);
});

test('without onnx/model.onnx, score reads the most precise file and says which', () => {
  const copy = only('q4-q4f16', ['q4', 'q4f16']);
  const result = runCli(['score', copy]);
  expect(result.code).toBe(0);
  expect(result.stdout.split('\n')[0]).toBe('--dtype auto read onnx/model_q4.onnx (q4), the most precise ONNX file present');
  expect(JSON.parse(runCli(['score', copy, '--json']).stdout).dtype).toBe('q4');
  expectCleanError(runCli(['score', copy, '--dtype', 'fp32']), /no onnx\/model\.onnx in .* \(available: q4, q4f16; --dtype auto picks q4\)/);
  expectCleanError(runCli(['score', copy, '--dtype', 'q3']), /--dtype must be one of auto, fp32, fp16, q8, int8, uint8, q4, q4f16, bnb4 \(got "q3"\)/);
});

test('prune --dtypes writes the chosen files, a missing format converted from the pruned fp32 file, and lists each', () => {
  const out = path.join(dir, 'p60');
  const result = runCli(['prune', fixturePath('llama-formats'), '--out', out, '--target-params', '0.6', '--evals', '100', '--importance', 'magnitude', '--dtypes', 'q4f16,fp32']);
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/^fp32\s+onnx\/model\.onnx\s+\d+\.\d\d MiB$/m);
  expect(result.stdout).toMatch(/^q4f16\s+onnx\/model_q4f16\.onnx\s+\d+\.\d\d MiB\s+\d+ weights re-quantized/m);
  expect(result.stdout).toMatch(/^not written \(left out by --dtypes\): onnx\/model_bnb4\.onnx, onnx\/model_fp16\.onnx, onnx\/model_int8\.onnx, onnx\/model_q4\.onnx, onnx\/model_quantized\.onnx, onnx\/model_uint8\.onnx$/m);
  expect(fs.readdirSync(path.join(out, 'onnx')).sort()).toEqual(['model.onnx', 'model_q4f16.onnx']);
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8'));
  expect(plan.files.map((f: { dtype: string; bytes: number; file: string }) => [f.dtype, f.bytes])).toEqual(
    [['fp32', fs.statSync(path.join(out, 'onnx/model.onnx')).size], ['q4f16', fs.statSync(path.join(out, 'onnx/model_q4f16.onnx')).size]],
  );
  expectCleanError(runCli(['prune', fixturePath('llama-formats'), '--out', path.join(dir, 'never'), '--target-params', '0.6', '--dtypes', 'q4,q2']), /--dtypes takes a comma-separated list of/);
});

describe('corrupt packed weights: one error line, exit code 2, nothing written', () => {
  function damaged(name: string, dtype: 'q4' | 'bnb4', edit: (index: GraphIndex) => void): string {
    const copy = only(name, ['fp32', dtype]);
    const file = path.join(copy, 'onnx', DTYPE_FILES[dtype]);
    const model = decodeModel(encodeModel(loadModel(file).model));
    edit(new GraphIndex(model.graph!));
    saveModel(model, file);
    return copy;
  }
  it.each([
    ['wrong blob size', 'q4' as const, (index: GraphIndex) => {
      const t = index.initializer(index.nodesOfType('MatMulNBits')[0]!.input[1]!)!;
      t.rawData = t.rawData!.subarray(0, t.rawData!.byteLength - 16);
    }, /model_q4\.onnx: cannot map the graph to Attention\/FFN modules: .*MatMulNBits node '.*_Q4': weight '.*_Q4' holds 2032 bytes, expected 2048 for \[64, 2, 16\]/],
    ['scales of the wrong length', 'q4' as const, (index: GraphIndex) => {
      const t = index.initializer(index.nodesOfType('MatMulNBits')[0]!.input[2]!)!;
      t.dims = [Number(t.dims[0]) - 1];
      t.rawData = t.rawData!.subarray(0, t.rawData!.byteLength - 4);
    }, /MatMulNBits node '.*_Q4': scales '.*_scales' hold \d+ values, expected \d+/],
    ['unknown bits', 'q4' as const, (index: GraphIndex) => {
      index.nodesOfType('MatMulNBits')[0]!.attribute.find((a) => a.name === 'bits')!.i = 5;
    }, /MatMulNBits node '.*_Q4': unsupported or missing attributes .*bits=5/],
    ['bnb4 data of the wrong size', 'bnb4' as const, (index: GraphIndex) => {
      const t = index.initializer(index.nodesOfType('MatMulBnb4')[0]!.input[1]!)!;
      t.dims = [Number(t.dims[0]) - 2];
      t.rawData = t.rawData!.subarray(0, t.rawData!.byteLength - 2);
    }, /MatMulBnb4 node '.*_Bnb4': weight '.*_Bnb4' is UINT8 \[\d+\], expected \d+ UINT8 bytes/],
  ])('%s', (label, dtype, edit, pattern) => {
    const copy = damaged(`bad-${label.replace(/\W+/g, '-')}`, dtype, edit);
    expectCleanError(runCli(['score', copy, '--dtype', dtype]), pattern);
    const out = path.join(dir, `out-${label.replace(/\W+/g, '-')}`);
    expectCleanError(runCli(['prune', copy, '--out', out, '--target-params', '0.6', '--evals', '50', '--importance', 'magnitude']), pattern);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.out-'))).toEqual([]);
  });
});
