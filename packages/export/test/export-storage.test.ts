/**
 * Storage patterns the generated fixtures do not use, made from llama-tiny by rewriting its
 * files: weights stored transposed (`[out, in]` behind a Transpose), int8 weights with one scale
 * and zero point per output column, tied weights and shape computations shared between layers
 * or nodes (which must be cloned, never changed under their other readers), and weights in an
 * external data file. Each export computes the sub-network and maps back to `prunedGraph`.
 */
import { cpSync, existsSync } from 'fs';
import { join } from 'path';
import { prunedGraph, type PrunePlan } from '@zerolm/core';
import { multiplyResult, type HfModel, type ModelDtype } from '@zerolm/adapters';
import { DataType, decodeTensorAsFloat32, makeNode, makeTensor, saveModel, transposeLastTwo, type NodeProto, type SaveModelOptions } from '@zerolm/onnx';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { exportPrunedModel } from '../src';
import {
  expectSameModuleGraph,
  generateBothWays,
  loadHfModel,
  maxAbsDiff,
  nonUniformPlan,
  onnxFile,
  planFor,
  runDirect,
  tempRoot,
  writeMaskedReference,
} from './export-helpers';

const IDS = [2, 17, 40, 9, 33, 5, 61, 12];
const root = tempRoot('export-storage');
beforeAll(() => ensureFixtures(['llama-tiny']));
afterAll(() => root.remove());

/** A copy of llama-tiny whose `dtype` file is edited in memory and saved back. */
function variantOf(name: string, dtype: ModelDtype, edit: (hf: HfModel) => void, save: SaveModelOptions = {}): string {
  const dir = join(root.dir, name);
  cpSync(fixturePath('llama-tiny'), dir, { recursive: true });
  const hf = loadHfModel(dir, { dtype });
  edit(hf);
  saveModel(hf.onnx.model, onnxFile(dir, dtype), save);
  return dir;
}

/** Exports `dir` by `plan` and checks the export against prunedGraph and the zeroed-units reference (fp32). */
async function exportAndCheck(dir: string, plan: PrunePlan, name: string, dtype: ModelDtype = 'fp32'): Promise<string> {
  const out = join(root.dir, `${name}-pruned`);
  await exportPrunedModel(dir, plan, out);
  const source = loadHfModel(dir, { dtype });
  expectSameModuleGraph(loadHfModel(out, { dtype }), prunedGraph(source.graph, plan), source, plan);
  const masked = join(root.dir, `${name}-masked`);
  writeMaskedReference(dir, plan, masked);
  const pruned = await runDirect(onnxFile(out), IDS);
  const reference = await runDirect(onnxFile(masked), IDS);
  expect(maxAbsDiff(pruned.output, reference.output)).toBeLessThan(1e-4);
  return out;
}

test('weights stored [out, in] behind a Transpose are cut along their stored rows', async () => {
  const dir = variantOf('transposed', 'fp32', (hf) => {
    const graph = hf.onnx.model.graph!;
    const transposes: NodeProto[] = [];
    for (const m of hf.match.multiplies) {
      const name = m.weight.dataName;
      const tensor = hf.index.initializer(name);
      if (!tensor || m.node.opType !== 'MatMul') continue;
      const [rows, cols] = tensor.dims as [number, number];
      const stored = makeTensor(`${name}_stored`, [cols, rows], transposeLastTwo(decodeTensorAsFloat32(tensor), [rows, cols]));
      graph.initializer = graph.initializer.map((t) => (t.name === name ? stored : t));
      transposes.push(makeNode('Transpose', [stored.name!], [name], { perm: [1, 0] }, { name: `${name}/Transpose` }));
    }
    graph.node = [...transposes, ...graph.node];
  });
  const source = loadHfModel(dir);
  expect(source.match.layers[0]!.attention.q.multiply.weight.transposed).toBe(true);
  const out = await exportAndCheck(dir, nonUniformPlan(source.graph), 'transposed');
  const { cached, reference } = await generateBothWays(out, 'fp32');
  expect(cached).toEqual(reference);
});

test('int8 weights with per-column scales and zero points are cut with their scales', async () => {
  const dir = variantOf('per-column-q8', 'q8', (hf) => {
    const graph = hf.onnx.model.graph!;
    const replace = new Map<string, ReturnType<typeof makeTensor>>();
    for (const m of hf.match.multiplies) {
      const q = m.weight.quantization;
      if (q?.scheme !== 'matmul-integer' || !q.zeroPoint) continue;
      const [rows, cols] = m.weight.storedShape as [number, number];
      const values = m.weight.storedValues();
      const scales = new Float32Array(cols);
      for (let c = 0; c < cols; c++) {
        let max = 0;
        for (let r = 0; r < rows; r++) max = Math.max(max, Math.abs(values[r * cols + c]!));
        scales[c] = max > 0 ? max / 127 : 1;
      }
      const codes = new Int8Array(rows * cols);
      for (let i = 0; i < codes.length; i++) codes[i] = Math.round(values[i]! / scales[i % cols]!);
      replace.set(m.weight.dataName, makeTensor(m.weight.dataName, [rows, cols], codes, DataType.INT8));
      replace.set(q.scale, makeTensor(q.scale, [cols], scales));
      replace.set(q.zeroPoint, makeTensor(q.zeroPoint, [cols], new Int8Array(cols), DataType.INT8));
    }
    graph.initializer = graph.initializer.map((t) => replace.get(t.name ?? '') ?? t);
  });
  const source = loadHfModel(dir, { dtype: 'q8' });
  expect(source.match.layers[0]!.attention.k.multiply.weight.quantization?.axis).toBe(1);
  const plan = nonUniformPlan(source.graph);
  const out = join(root.dir, 'per-column-q8-pruned');
  await exportPrunedModel(dir, plan, out);
  expectSameModuleGraph(loadHfModel(out, { dtype: 'q8' }), prunedGraph(source.graph, plan), source, plan);
  const fp32 = await runDirect(onnxFile(out), IDS);
  const q8 = await runDirect(onnxFile(out, 'q8'), IDS);
  expect(maxAbsDiff(q8.output, fp32.output)).toBeLessThan(0.5);
  const { cached } = await generateBothWays(out, 'q8', 4);
  expect(cached.length).toBeGreaterThan(0);
});

describe('tied weights and shared shape computations', () => {
  let dir: string;
  beforeAll(() => {
    dir = variantOf('shared', 'fp32', (hf) => {
      const [l0, l1] = hf.match.layers as [HfModel['match']['layers'][0], HfModel['match']['layers'][0]];
      const reshapeOf = (tensor: string) => hf.index.consumers(tensor).find((n) => n.opType === 'Reshape')!;
      const concatOf = (reshape: NodeProto) => hf.index.producer(reshape.input[1]!)!;
      // Layer 1's key projection reads layer 0's weight (tied).
      const k1 = l1.attention.k.multiply.node;
      k1.input[1] = l0.attention.k.multiply.node.input[1]!;
      // Layer 1's query head count is layer 0's Constant node.
      const q0 = concatOf(reshapeOf(multiplyResult(l0.attention.q.multiply)));
      const q1 = concatOf(reshapeOf(multiplyResult(l1.attention.q.multiply)));
      q1.input[2] = q0.input[2]!;
      // Layer 1's key reshape reads layer 0's key shape; layer 0's value reshape too (common subexpressions).
      const k0Reshape = reshapeOf(multiplyResult(l0.attention.k.multiply));
      reshapeOf(multiplyResult(l1.attention.k.multiply)).input[1] = k0Reshape.input[1]!;
      reshapeOf(multiplyResult(l0.attention.v.multiply)).input[1] = k0Reshape.input[1]!;
    });
  });

  test.each([
    ['layer 0 only', { 0: { groups: [1] } }],
    ['layer 1 only', { 1: { groups: [0] } }],
    ['both layers, other groups', { 0: { groups: [0] }, 1: { groups: [1] } }],
  ])('pruning %s leaves the other readers intact', async (label, choices) => {
    const source = loadHfModel(dir);
    expect(source.match.layers[1]!.attention.k.multiply.weight.dataName).toBe(source.match.layers[0]!.attention.k.multiply.weight.dataName);
    const out = await exportAndCheck(dir, planFor(source.graph, choices), `shared-${label.replace(/\W+/g, '-')}`);
    const { cached, reference } = await generateBothWays(out, 'fp32');
    expect(cached).toEqual(reference);
  });
});

test('weights in an external data file are exported with their own data file', async () => {
  const dir = variantOf('external', 'fp32', () => undefined, { externalData: { location: 'model.onnx_data', sizeThreshold: 256 } });
  expect(existsSync(join(dir, 'onnx', 'model.onnx_data'))).toBe(true);
  const source = loadHfModel(dir);
  const plan = nonUniformPlan(source.graph);
  const out = await exportAndCheck(dir, plan, 'external');
  expect(existsSync(join(out, 'onnx', 'model.onnx_data'))).toBe(true);
});

test('a head count computed at run time is not guessed: the smoke run refuses the export', async () => {
  const dir = variantOf('runtime-heads', 'fp32', (hf) => {
    const graph = hf.onnx.model.graph!;
    const q = multiplyResult(hf.match.layers[0]!.attention.q.multiply);
    const concat = hf.index.producer(hf.index.consumers(q).find((n) => n.opType === 'Reshape')!.input[1]!)!;
    // heads = 3 + 1, computed by an Add the exporter does not evaluate.
    const nodes = [
      makeNode('Constant', [], ['heads_part_a'], { value: makeTensor('a', [1], BigInt64Array.from([3n])) }),
      makeNode('Constant', [], ['heads_part_b'], { value: makeTensor('b', [1], BigInt64Array.from([1n])) }),
      makeNode('Add', ['heads_part_a', 'heads_part_b'], ['heads_computed']),
    ];
    concat.input[2] = 'heads_computed';
    graph.node.splice(graph.node.indexOf(concat), 0, ...nodes);
  });
  const source = loadHfModel(dir);
  const plan = planFor(source.graph, { 0: { groups: [1] } });
  const out = join(root.dir, 'runtime-heads-pruned');
  await expect(exportPrunedModel(dir, plan, out)).rejects.toThrow(/onnx\/model\.onnx: the pruned model does not run: .*Reshape/);
  expect(existsSync(out)).toBe(false);
});
