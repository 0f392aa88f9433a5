/**
 * Shared by the exporter tests: plans built from a module graph, direct onnxruntime runs of a
 * folder's ONNX file, transformers.js pipelines from any local folder, and module-graph
 * comparison down to the values.
 */
import { cpSync, mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { basename, dirname, join } from 'path';
import * as ort from 'onnxruntime-node';
import { keptIndices, type LayerPlan, type ModuleGraph, type PrunePlan, type WeightMatrix } from '@zerolm/core';
import { DTYPE_FILES, loadHfModel, sourceColumns, type BiasSource, type HfModel, type MatrixSource, type ModelDtype } from '@zerolm/adapters';
import { decodeTensorAsFloat32, makeTensor, saveModel, type TensorProto } from '@zerolm/onnx';
import { fullContextGreedy, int64Tensor } from '@zerolm/runtime';
import { DEFAULT_FIXTURES, fixturePath, type PlantedUnit } from '@zerolm/test-fixtures';

// transformers.js ships a CommonJS build for Node.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformers = require('@huggingface/transformers');

export const EOS = 3;
export const PROMPT = 'the keeper of the library';
export const TEXT = 'the stranger found the farm on the north hill';
export function onnxFile(dir: string, dtype: ModelDtype = 'fp32'): string {
  return join(dir, 'onnx', DTYPE_FILES[dtype]);
}

/** A fresh temporary folder and its removal. */
export function tempRoot(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `zerolm-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What to keep of one layer; omitted fields keep everything. */
export interface LayerChoice {
  dropped?: boolean;
  groups?: number[];
  neurons?: number[];
}

/** A plan over `graph`: everything kept except what `choices[i]` says. */
export function planFor(graph: ModuleGraph, choices: Record<number, LayerChoice> = {}): PrunePlan {
  return {
    layers: graph.layers.map((layer, i): LayerPlan => {
      const choice = choices[i] ?? {};
      return {
        index: i,
        dropped: choice.dropped ?? false,
        keptGroups: choice.groups ?? Array.from({ length: layer.attention.kvHeads }, (_, g) => g),
        keptNeurons: choice.neurons ?? Array.from({ length: layer.ffn.width }, (_, j) => j),
      };
    }),
  };
}

/**
 * A plan that differs per layer, in head counts too: layer i keeps the key-value groups g with
 * `(g + i) mod (i + 2) != 0` (all of them if that leaves none) and the neurons j with
 * `(j + i) mod 3 != 0`; e.g. 4 groups -> [1, 3] in layer 0 and [0, 1, 3] in layer 1.
 */
export function nonUniformPlan(graph: ModuleGraph): PrunePlan {
  const choices: Record<number, LayerChoice> = {};
  graph.layers.forEach((layer, i) => {
    const all = Array.from({ length: layer.attention.kvHeads }, (_, g) => g);
    const groups = all.filter((g) => (g + i) % (i + 2) !== 0);
    choices[i] = {
      groups: groups.length > 0 ? groups : all,
      neurons: Array.from({ length: layer.ffn.width }, (_, j) => j).filter((j) => (j + i) % 3 !== 0),
    };
  });
  return planFor(graph, choices);
}

/** A transformers.js pipeline for the model folder `dir` (any folder: the local path is set per call). */
export async function loadPipeline(task: 'feature-extraction' | 'text-generation' | 'fill-mask', dir: string, dtype: ModelDtype = 'fp32') {
  const { env, pipeline } = transformers;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = `${dirname(dir)}/`;
  return pipeline(task, basename(dir), { dtype });
}

function feeds(session: ort.InferenceSession, ids: readonly number[]): Record<string, ort.Tensor> {
  const n = ids.length;
  const out: Record<string, ort.Tensor> = {
    input_ids: int64Tensor(ids, [1, n]),
    attention_mask: int64Tensor(ids.map(() => 1), [1, n]),
  };
  if (session.inputNames.includes('token_type_ids')) out['token_type_ids'] = int64Tensor(ids.map(() => 0), [1, n]);
  if (session.inputNames.includes('position_ids')) out['position_ids'] = int64Tensor(ids.map((_, i) => i), [1, n]);
  for (const meta of session.inputMetadata) {
    if (!meta.name.startsWith('past_key_values.')) continue;
    const shape = (meta as unknown as { shape: (number | string)[] }).shape;
    out[meta.name] = new ort.Tensor('float32', new Float32Array(0), [1, shape[1] as number, 0, shape[3] as number]);
  }
  return out;
}

/** The main output (`last_hidden_state` or `logits`) of one direct onnxruntime run, and the input names. */
export async function runDirect(file: string, ids: readonly number[]): Promise<{ output: Float32Array; dims: readonly number[]; inputs: string[] }> {
  const session = await ort.InferenceSession.create(file);
  try {
    const result = await session.run(feeds(session, ids));
    const tensor = (result['logits'] ?? result['last_hidden_state']) as ort.Tensor;
    return { output: tensor.data as Float32Array, dims: tensor.dims, inputs: [...session.inputNames] };
  } finally {
    await session.release();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

export function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export function allFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i] as number)) return false;
  return true;
}

/** Prompt ids without special tokens, as the generator's tests use them. */
export function promptIds(generator: { tokenizer: (t: string, o: object) => { input_ids: { data: BigInt64Array } } }, text = PROMPT): number[] {
  return Array.from(generator.tokenizer(text, { add_special_tokens: false }).input_ids.data, Number);
}

/** Cached greedy generation through transformers.js, and the same through a full-context loop on the file. */
export async function generateBothWays(dir: string, dtype: ModelDtype, maxNew = 8): Promise<{ cached: number[]; reference: number[] }> {
  const generator = await loadPipeline('text-generation', dir, dtype);
  try {
    const prompt = promptIds(generator);
    const inputs = generator.tokenizer(PROMPT, { add_special_tokens: false, return_tensor: true });
    const generated = await generator.model.generate({ ...inputs, max_new_tokens: maxNew, do_sample: false });
    const cached = Array.from(generated.data as BigInt64Array, Number).slice(prompt.length);
    const reference = await fullContextGreedy(onnxFile(dir, dtype), prompt, maxNew, EOS);
    return { cached, reference };
  } finally {
    await generator.dispose();
  }
}

/** Values of a bias as the module graph points at them. */
function biasValues(hf: HfModel, source: BiasSource): Float32Array {
  const all = decodeTensorAsFloat32(hf.index.constantTensor(source.tensor)!, { baseDir: hf.onnx.baseDir });
  return Float32Array.from(sourceColumns(source), (i) => all[i]!);
}

/**
 * Asserts that `actual` (loaded from an export) is `expected` (`prunedGraph` of the source):
 * same layer shapes, matrices with the same roles, shapes and values (exactly), biases with the
 * same lengths and values.
 */
export function expectSameModuleGraph(actualModel: HfModel, expected: ModuleGraph, source: HfModel, plan: PrunePlan): void {
  const actual = actualModel.graph;
  expect(actual.layers.length).toBe(expected.layers.length);
  const keptLayers = plan.layers.filter((l) => !l.dropped);
  expected.layers.forEach((e, i) => {
    const a = actual.layers[i]!;
    const lp = keptLayers[i]!;
    const sourceLayer = source.graph.layers[lp.index]!;
    for (const key of ['heads', 'kvHeads', 'headDim'] as const) expect(a.attention[key]).toBe(e.attention[key]);
    expect(a.ffn.width).toBe(e.ffn.width);
    const modules = [
      [a.attention, e.attention, sourceLayer.attention],
      [a.ffn, e.ffn, sourceLayer.ffn],
    ] as const;
    for (const [am, em, sm] of modules) {
      expect(am.matrices.map((m) => m.role)).toEqual(em.matrices.map((m) => m.role));
      am.matrices.forEach((m, k) => {
        const want = em.matrices[k]!;
        expect([m.rows, m.cols]).toEqual([want.rows, want.cols]);
        const got = Float32Array.from(m.values());
        const ref = Float32Array.from(want.values());
        expect(sameBytes(got, ref)).toBe(true);
      });
      expect(am.biases.map((b) => [b.role, b.length])).toEqual(em.biases.map((b) => [b.role, b.length]));
      am.biases.forEach((b) => {
        const owner = sm.matrices.find((m) => m.role === b.role)!;
        const sourceBias = sm.biases.find((x) => x.role === b.role)!;
        const full = biasValues(source, sourceBias.source as BiasSource);
        const kept = owner.role === 'o' || owner.role === 'down' ? undefined : keptIndices(sourceLayer, owner, lp);
        const want = kept ? Float32Array.from(kept, (j) => full[j]!) : full;
        expect(sameBytes(biasValues(actualModel, b.source as BiasSource), want)).toBe(true);
      });
    }
  });
}

/**
 * The reference a pruned model must compute: a copy of the source folder (fp32 file only) where
 * every removed unit's contribution is zeroed instead of cut (its rows of o / down; for a
 * dropped layer all of them and the o / down biases, which equals skipping it in a pre-norm
 * model).
 */
export function writeMaskedReference(sourceDir: string, plan: PrunePlan, outDir: string): void {
  cpSync(sourceDir, outDir, { recursive: true, filter: (src) => !/model_\w+\.onnx$/.test(src) });
  const hf = loadHfModel(sourceDir);
  const replaced = new Map<string, TensorProto>();
  const zeroRows = (matrix: WeightMatrix, keep: readonly number[]) => {
    const weight = (matrix.source as MatrixSource).multiply.weight;
    const tensor = hf.index.constantTensor(weight.dataName)!;
    const values = Float32Array.from(decodeTensorAsFloat32(tensor, { baseDir: hf.onnx.baseDir }));
    const [rows, cols] = weight.storedShape as [number, number];
    const kept = new Set(keep);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const logicalRow = weight.transposed ? c : r;
        if (!kept.has(logicalRow)) values[r * cols + c] = 0;
      }
    }
    replaced.set(weight.dataName, makeTensor(weight.dataName, tensor.dims, values));
  };
  const zeroBias = (name: string) => {
    const tensor = hf.index.constantTensor(name)!;
    replaced.set(name, makeTensor(name, tensor.dims, new Float32Array(decodeTensorAsFloat32(tensor, { baseDir: hf.onnx.baseDir }).length)));
  };
  hf.graph.layers.forEach((layer, i) => {
    const lp = plan.layers[i]!;
    const o = layer.attention.matrices.find((m) => m.role === 'o')!;
    const down = layer.ffn.matrices.find((m) => m.role === 'down')!;
    zeroRows(o, lp.dropped ? [] : keptIndices(layer, o, lp)!);
    zeroRows(down, lp.dropped ? [] : lp.keptNeurons);
    if (lp.dropped) {
      for (const b of [...layer.attention.biases, ...layer.ffn.biases]) if (b.role === 'o' || b.role === 'down') zeroBias(b.name);
    }
  });
  const graph = hf.onnx.model.graph!;
  graph.initializer = graph.initializer.map((t) => replaced.get(t.name ?? '') ?? t);
  saveModel(hf.onnx.model, onnxFile(outDir), { sourceDir: hf.onnx.baseDir });
}

export { loadHfModel };

/** The plan removing every planted unit that is a whole unit (a key-value group, or a head without GQA, or a neuron). */
export function plantedPlan(name: keyof typeof DEFAULT_FIXTURES, dir = fixturePath(name)) {
  const source = loadHfModel(dir);
  const choices: Record<number, LayerChoice> = {};
  const gqa = source.graph.layers.some((l) => l.attention.kvHeads !== l.attention.heads);
  source.graph.layers.forEach((layer, i) => {
    const spec = DEFAULT_FIXTURES[name] as { planted?: readonly PlantedUnit[] };
    const units = (spec.planted ?? []).filter((u) => u.layer === i);
    const groups = new Set(units.flatMap((u) => ('kvGroup' in u ? [u.kvGroup] : 'head' in u && !gqa ? [u.head] : [])));
    const neurons = new Set(units.flatMap((u) => ('neuron' in u ? [u.neuron] : [])));
    choices[i] = {
      groups: Array.from({ length: layer.attention.kvHeads }, (_, g) => g).filter((g) => !groups.has(g)),
      neurons: Array.from({ length: layer.ffn.width }, (_, j) => j).filter((j) => !neurons.has(j)),
    };
  });
  return { source, plan: planFor(source.graph, choices) };
}

/** Formats whose activations onnxruntime quantizes per run (DynamicQuantizeLinear). */
export const DYNAMIC_ACTIVATIONS: ReadonlySet<string> = new Set(['q8', 'int8', 'uint8']);

/**
 * The largest shortfall of a generated token's logit below the maximum at its step, relative to
 * the step's logit range, in one full-context run over prompt + generated (causal, so position t
 * sees what the greedy loop's step t saw).
 */
export async function shortfallOfChoices(file: string, prompt: readonly number[], generated: readonly number[]): Promise<number> {
  const tokens = [...prompt, ...generated];
  const session = await ort.InferenceSession.create(file);
  try {
    const n = tokens.length;
    const feeds: Record<string, ort.Tensor> = { input_ids: int64Tensor(tokens, [1, n]), attention_mask: int64Tensor(tokens.map(() => 1), [1, n]) };
    if (session.inputNames.includes('position_ids')) feeds['position_ids'] = int64Tensor(tokens.map((_, i) => i), [1, n]);
    for (const meta of session.inputMetadata) {
      if (!meta.name.startsWith('past_key_values.')) continue;
      const shape = (meta as unknown as { shape: number[] }).shape;
      feeds[meta.name] = new ort.Tensor('float32', new Float32Array(0), [1, shape[1]!, 0, shape[3]!]);
    }
    const logits = (await session.run(feeds))['logits'] as ort.Tensor;
    const vocab = logits.dims[2] as number;
    const data = logits.data as Float32Array;
    let worst = 0;
    generated.forEach((token, step) => {
      const offset = (prompt.length + step - 1) * vocab;
      let max = -Infinity;
      let min = Infinity;
      for (let v = 0; v < vocab; v++) {
        max = Math.max(max, data[offset + v]!);
        min = Math.min(min, data[offset + v]!);
      }
      worst = Math.max(worst, (max - data[offset + token]!) / (max - min));
    });
    return worst;
  } finally {
    await session.release();
  }
}

/**
 * transformers.js's cached greedy generation on `dtype`'s file of `dir` against the full-context
 * loop on the same file: the same tokens, or, where activations are quantized per run (one token
 * with the cache, the whole sequence without), each cached choice within 5% of the step's logit
 * range of the full-context maximum (a random token falls a third of the range short or more).
 */
export async function expectCachedGreedyMatches(dir: string, dtype: ModelDtype, maxNew = 8): Promise<number[]> {
  const { cached, reference } = await generateBothWays(dir, dtype, maxNew);
  if (DYNAMIC_ACTIVATIONS.has(dtype)) {
    const generator = await loadPipeline('text-generation', dir, dtype);
    const prompt = promptIds(generator);
    await generator.dispose();
    expect(await shortfallOfChoices(onnxFile(dir, dtype), prompt, cached)).toBeLessThan(0.05);
  } else {
    expect(cached).toEqual(reference);
  }
  return cached;
}
