/**
 * The least-squares correction end to end: `prune` refits the kept rows of every pruned `o` and
 * `down` (and their output biases), the exporter writes them into every file (fp32, fp16, q8), the
 * export computes exactly what a source copy with those rows computes, loads in transformers.js,
 * and `zerolm score` on it equals the reported score; a plan that removes nothing leaves the
 * files byte for byte.
 */
import { keptIndices, prunedGraph, scoreReport, type PrunePlan } from '@zerolm/core';
import { type MatrixSource } from '@zerolm/adapters';
import { decodeTensorAsFloat32, makeNode, makeTensor, saveModel } from '@zerolm/onnx';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { cpSync, existsSync, readdirSync, readFileSync } from 'fs';
import { join } from 'path';
import { exportPrunedModel, type WeightOverride } from '@zerolm/export';
import { calibrate, clearCalibrationCache, prune } from '../src';
import { biasValues } from '../src/calibration/ablation';
import { expectCachedGreedyMatches, loadHfModel, loadPipeline, maxAbsDiff, onnxFile, planFor, runDirect, tempRoot } from '../../export/test/export-helpers';

const root = tempRoot('correction');
beforeAll(() => ensureFixtures(['llama-tiny', 'gpt2-tiny', 'bert-tiny']));
afterAll(() => {
  root.remove();
  clearCalibrationCache();
});

const CALIBRATION = { samples: 16, length: 32 };

/**
 * The fp32 file a corrected export must compute: the source with each overridden matrix's kept
 * rows replaced by the override and its removed rows zero (and the bias replaced, or added after
 * a multiply that has none).
 */
function writeCorrectedReference(sourceDir: string, plan: PrunePlan, overrides: readonly WeightOverride[], outDir: string): void {
  cpSync(sourceDir, outDir, { recursive: true, filter: (src) => !/model_(quantized|fp16)\.onnx$/.test(src) });
  const hf = loadHfModel(sourceDir);
  const graph = hf.onnx.model.graph!;
  const replaced = new Map<string, ReturnType<typeof makeTensor>>();
  plan.layers.forEach((lp, i) => {
    const layer = hf.graph.layers[i]!;
    for (const matrix of [...layer.attention.matrices, ...layer.ffn.matrices]) {
      if (matrix.role !== 'o' && matrix.role !== 'down') continue;
      const kept = keptIndices(layer, matrix, lp)!;
      const override = overrides.find((o) => o.layer === i && o.role === matrix.role);
      const weight = (matrix.source as MatrixSource).multiply.weight;
      const tensor = hf.index.constantTensor(weight.dataName)!;
      const values = Float32Array.from(decodeTensorAsFloat32(tensor, { baseDir: hf.onnx.baseDir }));
      const [rows, cols] = weight.storedShape as [number, number];
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const [row, col] = weight.transposed ? [c, r] : [r, c];
          const k = kept.indexOf(row);
          if (k < 0) values[r * cols + c] = 0;
          else if (override?.values) values[r * cols + c] = override.values[k * matrix.cols + col]!;
        }
      }
      replaced.set(weight.dataName, makeTensor(weight.dataName, tensor.dims, values));
      const multiply = (matrix.source as MatrixSource).multiply;
      const bias = multiply.bias;
      if (override?.bias && bias) replaced.set(bias.tensor, makeTensor(bias.tensor, hf.index.constantTensor(bias.tensor)!.dims, Float32Array.from(override.bias)));
      if (override?.bias && !bias) {
        const name = `reference_bias_${i}_${matrix.role}`;
        const sum = `${multiply.output}_reference_biased`;
        for (const node of graph.node) node.input = node.input.map((n) => (n === multiply.output ? sum : n));
        const at = graph.node.findIndex((n) => n.output.includes(multiply.output));
        graph.node.splice(at + 1, 0, makeNode('Add', [multiply.output, name], [sum], {}, { name: `/reference/${name}/Add` }));
        graph.initializer.push(makeTensor(name, [matrix.cols], Float32Array.from(override.bias)));
      }
    }
  });
  graph.initializer = graph.initializer.map((t) => replaced.get(t.name ?? '') ?? t);
  saveModel(hf.onnx.model, onnxFile(outDir), { sourceDir: hf.onnx.baseDir });
}

describe('bias correction (FLAP)', () => {
  it.each([
    ['llama-tiny', 0.6],
    ['gpt2-tiny', 0.5],
  ] as const)('%s: each pruned o / down gets the removed channels\' mean output as its bias (added where it had none), in every file', async (name, budget) => {
    const out = join(root.dir, `${name}-bias`);
    const result = await prune(fixturePath(name), { targetParams: budget, out, importance: 'flap', search: 'global', correction: 'bias', calibration: CALIBRATION });
    const source = loadHfModel(fixturePath(name));
    const withBias = source.match.layers[0]!.ffn.down.bias !== undefined;
    expect(result.overrides.length).toBeGreaterThan(0);
    expect(result.planFile.correction).toEqual({ method: 'bias', biases: result.overrides.length, ...(withBias ? {} : { addedBiases: result.overrides.length }) });
    expect(result.planFile.score.after).toBe(result.planFile.score.searched);
    // b + sum over removed channels j of E[x_j] W[j, :], from the calibration moments.
    const calibration = await calibrate(source, { ...CALIBRATION, seed: 0 });
    for (const override of result.overrides) {
      expect(override.values).toBeUndefined();
      const layer = source.graph.layers[override.layer]!;
      const matrix = [...layer.attention.matrices, ...layer.ffn.matrices].find((m) => m.role === override.role)!;
      const kept = new Set(keptIndices(layer, matrix, result.plan.plan.layers[override.layer]!));
      const moments = override.role === 'o' ? calibration.layers[override.layer]!.attention : calibration.layers[override.layer]!.ffn;
      const multiply = (matrix.source as MatrixSource).multiply;
      const want = multiply.bias ? Array.from(biasValues(source, multiply.bias.tensor)) : new Array<number>(matrix.cols).fill(0);
      const w = matrix.values();
      for (let j = 0; j < matrix.rows; j++) if (!kept.has(j)) for (let c = 0; c < matrix.cols; c++) want[c]! += moments.mean[j]! * w[j * matrix.cols + c]!;
      want.forEach((v, c) => expect(override.bias![c]).toBeCloseTo(v, 9));
    }
    // The fp32 export computes the source with the removed rows zero and the bias in place.
    const reference = join(root.dir, `${name}-bias-reference`);
    writeCorrectedReference(fixturePath(name), result.plan.plan, result.overrides, reference);
    const ids = [2, 17, 40, 9, 33, 5, 61, 12];
    const [got, want] = [await runDirect(onnxFile(out), ids), await runDirect(onnxFile(reference), ids)];
    expect(maxAbsDiff(got.output, want.output)).toBeLessThan(1e-4);
    // Every file carries it, and transformers.js runs every file (a cached generation equals a full-context loop).
    for (const dtype of ['fp32', 'q8', 'fp16'] as const) {
      if (!existsSync(onnxFile(out, dtype))) continue;
      const written = loadHfModel(out, { dtype });
      const adds = written.onnx.model.graph!.node.filter((n) => n.opType === 'Add' && n.input.some((i) => i.includes('zerolm_bias')));
      expect(adds.length).toBe(withBias ? 0 : result.overrides.length);
      // q8 quantizes activations per run: its cached choices are checked up to that rounding.
      expect((await expectCachedGreedyMatches(out, dtype, 5)).length).toBeGreaterThan(0);
    }
  });
});

describe('refit correction', () => {
  it.each([
    ['gpt2-tiny', 0.5],
    ['llama-tiny', 0.6],
    ['bert-tiny', 0.5],
  ] as const)('%s: the export computes the corrected weights, and zerolm score on it equals the reported score', async (name, budget) => {
    const out = join(root.dir, `${name}-refit`);
    const result = await prune(fixturePath(name), { targetParams: budget, out, evals: 100, calibration: CALIBRATION });
    const file = result.planFile;
    expect(file.correction.method).toBe('refit');
    expect(result.overrides.length).toBeGreaterThan(0);
    expect(file.correction.matrices).toBe(result.overrides.length);
    const source = loadHfModel(fixturePath(name));
    const withBias = source.match.layers[0]!.ffn.down.bias !== undefined;
    expect(file.correction.biases).toBe(withBias ? result.overrides.length : 0);

    // Scores: after = the written model's, searched = the masked candidate's.
    const exported = loadHfModel(out);
    const options = { measure: file.measure, alpha: file.alpha, variant: file.variant as 'linear' | 'log' };
    expect(Math.abs(scoreReport(exported.graph, options).score / file.score.after - 1)).toBeLessThan(1e-4);
    expect(Math.abs(scoreReport(prunedGraph(source.graph, result.plan.plan), options).score / file.score.searched - 1)).toBeLessThan(1e-4);
    expect(file.score.after).not.toBe(file.score.searched);
    expect(JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')).score).toEqual(file.score);

    // The fp32 export computes what the source computes with the corrected rows in place.
    const reference = join(root.dir, `${name}-reference`);
    writeCorrectedReference(fixturePath(name), result.plan.plan, result.overrides, reference);
    const ids = [2, 17, 40, 9, 33, 5, 61, 12];
    const [got, want] = [await runDirect(onnxFile(out), ids), await runDirect(onnxFile(reference), ids)];
    expect(maxAbsDiff(got.output, want.output)).toBeLessThan(1e-4);

    // Every other file holds the same values in its own type: fp16 rounded, q8 requantized.
    for (const dtype of ['fp16', 'q8'] as const) {
      if (!existsSync(onnxFile(fixturePath(name), dtype))) continue;
      const written = loadHfModel(out, { dtype });
      for (const override of result.overrides) {
        const position = result.plan.plan.layers.slice(0, override.layer).filter((l) => !l.dropped).length;
        const layer = written.graph.layers[position]!;
        const matrix = [...layer.attention.matrices, ...layer.ffn.matrices].find((m) => m.role === override.role)!;
        const values = matrix.values();
        const refitted = override.values;
        if (!refitted) throw new Error('refit overrides carry values');
        expect(values.length).toBe(refitted.length);
        if (dtype === 'fp16') {
          // Half an fp16 ulp: 2^-11 relative (plus the subnormal spacing).
          values.forEach((v, k) => expect(Math.abs(v - refitted[k]!)).toBeLessThanOrEqual(Math.abs(refitted[k]!) * 2 ** -11 + 2 ** -25));
        } else if (!(matrix.source as MatrixSource).multiply.weight.quantization) {
          // q8 files keep some multiplies in float (GPT-2's Gemm): the float32 values then.
          expect(Array.from(values)).toEqual(Array.from(Float32Array.from(refitted)));
        } else {
          const weight = (matrix.source as MatrixSource).multiply.weight;
          const scales = decodeTensorAsFloat32(written.index.constantTensor(weight.quantization!.scale)!);
          const step = Math.max(...scales);
          let top = -Infinity;
          let bottom = Infinity;
          values.forEach((v) => ((top = Math.max(top, v)), (bottom = Math.min(bottom, v))));
          values.forEach((v, k) => {
            const want = refitted[k]!;
            // Beyond the range the file's scale covers, the value is clamped to its end.
            if (want > top) expect(v).toBe(top);
            else if (want < bottom) expect(v).toBe(bottom);
            else expect(Math.abs(v - want)).toBeLessThanOrEqual(step / 2 + 1e-7);
          });
        }
        if (override.bias) {
          const bias = biasValues(written, (matrix.source as MatrixSource).multiply.bias!.tensor);
          bias.forEach((b, c) => expect(Math.abs(b - override.bias![c]!)).toBeLessThanOrEqual(Math.abs(override.bias![c]!) * 2 ** -11 + 1e-7));
        }
      }
    }

    // transformers.js loads it (and a decoder's cached generation equals a full-context loop).
    if (source.config.decoder) {
      for (const dtype of ['fp32', 'q8', 'fp16'] as const) {
        if (!existsSync(onnxFile(out, dtype))) continue;
        // q8 quantizes activations per run: its cached choices are checked up to that rounding.
        expect((await expectCachedGreedyMatches(out, dtype, 5)).length).toBeGreaterThan(0);
      }
    } else {
      const extractor = await loadPipeline('feature-extraction', out);
      const embedding = await extractor('the farm on the hill', { pooling: 'mean' });
      expect(embedding.dims[1]).toBe(source.config.hiddenSize);
      await extractor.dispose();
    }
  });

  it('correction none writes the sliced weights, and records it', async () => {
    const out = join(root.dir, 'gpt2-none');
    const result = await prune(fixturePath('gpt2-tiny'), { targetParams: 0.5, out, evals: 100, correction: 'none', importance: 'magnitude' });
    expect(result.overrides).toEqual([]);
    expect(result.planFile.correction).toEqual({ method: 'none' });
    // A weight rule with no correction never runs the model.
    expect(result.planFile.calibration).toBeUndefined();
    expect(result.planFile.score.after).toBe(result.planFile.score.searched);
    const source = loadHfModel(fixturePath('gpt2-tiny'));
    const expected = prunedGraph(source.graph, result.plan.plan);
    loadHfModel(out).graph.layers.forEach((layer, i) => {
      const down = layer.ffn.matrices.find((m) => m.role === 'down')!;
      expect(Array.from(down.values())).toEqual(Array.from(expected.layers[i]!.ffn.matrices.find((m) => m.role === 'down')!.values()));
    });
    await expect(prune(fixturePath('gpt2-tiny'), { targetParams: 0.5, planOnly: true, correction: 'lsq' as never })).rejects.toThrow(/unknown correction "lsq" \(known: refit, bias, none\)/);
  });

  it('refits random and magnitude selections too, from the calibration of the plan seed', async () => {
    for (const importance of ['random', 'magnitude']) {
      const result = await prune(fixturePath('llama-tiny'), { targetParams: 0.5, planOnly: true, importance, seed: 2, search: 'uniform', calibration: CALIBRATION });
      expect(result.planFile.correction.method).toBe('refit');
      expect(result.overrides.length).toBeGreaterThan(0);
      expect(result.planFile.calibration).toMatchObject({ seed: 2, samples: 16, length: 32, source: 'self-generated' });
      expect(result.planFile.importance).toEqual({ rule: importance });
    }
  });

  it('a plan that removes nothing leaves every ONNX file byte for byte', async () => {
    for (const name of ['llama-tiny', 'gpt2-tiny', 'bert-tiny']) {
      const out = join(root.dir, `${name}-whole`);
      const result = await prune(fixturePath(name), { targetParams: 1, out, evals: 50, calibration: CALIBRATION });
      expect(result.overrides).toEqual([]);
      expect(result.planFile.correction).toMatchObject({ method: 'refit', matrices: 0 });
      for (const file of readdirSync(join(fixturePath(name), 'onnx'))) {
        expect(readFileSync(join(out, 'onnx', file)).equals(readFileSync(join(fixturePath(name), 'onnx', file)))).toBe(true);
      }
    }
  });

  it('the exporter refuses overrides that do not fit the plan', async () => {
    const source = loadHfModel(fixturePath('llama-tiny'));
    const plan = planFor(source.graph, { 0: { neurons: Array.from({ length: 32 }, (_, j) => j) } });
    const out = join(root.dir, 'bad-overrides');
    const rows = 32 * source.graph.hiddenSize;
    await expect(exportPrunedModel(fixturePath('llama-tiny'), plan, out, { overrides: [{ layer: 1, role: 'down', values: new Float64Array(10) }] })).rejects.toThrow(
      /layer 1 down: the plan removes none of its rows/,
    );
    await expect(exportPrunedModel(fixturePath('llama-tiny'), plan, out, { overrides: [{ layer: 0, role: 'down', values: new Float64Array(10) }] })).rejects.toThrow(
      /10 values, expected 32 kept rows x 32 columns/,
    );
    await expect(exportPrunedModel(fixturePath('llama-tiny'), plan, out, { overrides: [{ layer: 0, role: 'down', values: new Float64Array(rows).fill(NaN) }] })).rejects.toThrow(/value 0 is NaN/);
    await expect(exportPrunedModel(fixturePath('llama-tiny'), plan, out, { overrides: [{ layer: 0, role: 'down', values: new Float64Array(rows), bias: [1] }] })).rejects.toThrow(/1 bias values, expected 32/);
    await expect(exportPrunedModel(fixturePath('llama-tiny'), plan, out, { overrides: [{ layer: 0, role: 'down' }] })).rejects.toThrow(/layer 0 down: neither values nor a bias/);
    expect(existsSync(out)).toBe(false);
  });
});
