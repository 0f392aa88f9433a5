/**
 * The generator's promises, read back from the written files with @zerolm/onnx: spec checks,
 * byte-for-byte determinism, the export patterns adapters rely on (names, shape constants,
 * quantized layout), planted zeros in every coupled slice, and lazy handling of big shapes.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataType, GraphIndex, loadModel, type LoadedModel, type NodeProto } from '@zerolm/onnx';
import {
  BENCHMARK_SPECS,
  buildModelGraph,
  DEFAULT_FIXTURES,
  ensureFixtures,
  fixturePath,
  FIXTURE_NAMES,
  generateModel,
  isCurrent,
  quantizeInt8,
  resolveSpec,
  type FixtureName,
  type ModelSpec,
} from '../src';
import { runCli } from '../src/cli';

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'zerolm-fixtures-'));
  ensureFixtures();
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Opened {
  file: LoadedModel;
  index: GraphIndex;
  nodes: NodeProto[];
  node(name: string): NodeProto;
  values(name: string): Float32Array;
  ints(name: string): number[];
  dims(name: string): number[];
}

function open(fixture: FixtureName, file = 'model.onnx'): Opened {
  const loaded = loadModel(join(fixturePath(fixture), 'onnx', file));
  const graph = loaded.model.graph!;
  const index = new GraphIndex(graph);
  const tensor = (name: string) => {
    const t = index.constantTensor(name);
    if (!t) throw new Error(`no initializer or constant ${name}`);
    return t;
  };
  return {
    file: loaded,
    index,
    nodes: graph.node,
    node(name) {
      const found = graph.node.find((n) => n.name === name);
      if (!found) throw new Error(`no node ${name}`);
      return found;
    },
    values: (name) => loaded.decodeTensorAsFloat32(tensor(name)),
    ints: (name) => Array.from(loaded.decodeTensor(tensor(name), { int64: 'number' }) as Float64Array),
    dims: (name) => [...tensor(name).dims],
  };
}

/** The int64 values of a Constant node's output. */
function constantInts(opened: Opened, output: string): number[] {
  if (opened.index.producer(output)?.opType !== 'Constant') throw new Error(`${output} is not a Constant output`);
  return opened.ints(output);
}

function count(opened: Opened, opType: string): number {
  return opened.nodes.filter((n) => n.opType === opType).length;
}

describe('spec validation', () => {
  const base: ModelSpec = { family: 'llama', layers: 2, hidden: 32, heads: 4, kvHeads: 2, ffn: 64, vocab: 64 };
  test.each<[string, ModelSpec, RegExp]>([
    ['unknown family', { ...base, family: 'bart' as never }, /family must be one of/],
    ['heads not a multiple of kvHeads', { ...base, kvHeads: 3 }, /multiple of kvHeads/],
    ['kvHeads on an encoder', { ...base, family: 'bert', kvHeads: 2 }, /kvHeads is only for/],
    ['per-layer list of the wrong length', { ...base, layerHeads: [4] }, /layerHeads must list one value per layer/],
    ['planted head out of range', { ...base, planted: [{ layer: 1, head: 4 }] }, /planted\[0\]\.head must be in 0\.\.3/],
    ['planted layer out of range', { ...base, planted: [{ layer: 2, neuron: 0 }] }, /planted\[0\]\.layer/],
    ['kvGroup on gpt2', { ...base, family: 'gpt2', kvHeads: undefined, planted: [{ layer: 0, kvGroup: 0 }] }, /kvGroup is only for/],
    ['opset out of range', { ...base, opset: 18 }, /opset must be/],
    ['odd rotary head width', { ...base, headDim: 7 }, /headDim must be even/],
    ['encoder heads not covering hidden', { ...base, family: 'bert', kvHeads: undefined, headDim: 4 }, /heads \* headDim = hidden/],
    ['tiny vocabulary', { ...base, vocab: 8 }, /vocab must be at least/],
  ])('%s is refused', (_, spec, message) => {
    expect(() => resolveSpec(spec)).toThrow(message);
  });

  test('pruned query heads keep the group size when kv heads are not given', () => {
    expect(resolveSpec({ ...base, layerHeads: [4, 2] }).perLayer.map((l) => l.kvHeads)).toEqual([2, 1]);
  });
});

describe('determinism', () => {
  function filesOf(dir: string): Record<string, Buffer> {
    const out: Record<string, Buffer> = {};
    for (const f of readdirSync(dir)) {
      if (statSync(join(dir, f)).isDirectory()) for (const g of readdirSync(join(dir, f))) out[`${f}/${g}`] = readFileSync(join(dir, f, g));
      else out[f] = readFileSync(join(dir, f));
    }
    return out;
  }

  // A failure here after a generator change means GENERATOR_VERSION must be bumped.
  test.each(FIXTURE_NAMES)('%s: a fresh generation is byte-identical to the cached fixture', (name) => {
    const fresh = join(scratch, `fresh-${name}`);
    generateModel(DEFAULT_FIXTURES[name], fresh);
    const expected = filesOf(fixturePath(name));
    const actual = filesOf(fresh);
    expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
    for (const f of Object.keys(expected)) expect(actual[f]!.equals(expected[f]!)).toBe(true);
  });

  test('another seed gives other weights but the same graph', () => {
    const dir = join(scratch, 'reseeded');
    generateModel({ ...DEFAULT_FIXTURES['llama-tiny'], seed: 99, variants: [] }, dir);
    const a = open('llama-tiny');
    const b = loadModel(join(dir, 'onnx', 'model.onnx'));
    expect(b.model.graph!.node.map((n) => n.name)).toEqual(a.nodes.map((n) => n.name));
    const embedding = b.model.graph!.initializer.find((t) => t.name === 'model.embed_tokens.weight')!;
    expect(Array.from(b.decodeTensorAsFloat32(embedding))).not.toEqual(Array.from(a.values('model.embed_tokens.weight')));
  });
});

describe('export patterns', () => {
  test('bert: optimum inputs, anonymous transposed Linear weights, named biases, opset-17 LayerNorm, erf GELU', () => {
    const m = open('bert-tiny');
    const graph = m.file.model.graph!;
    expect(graph.input.map((i) => i.name)).toEqual(['input_ids', 'attention_mask', 'token_type_ids']);
    expect(graph.output.map((o) => o.name)).toEqual(['last_hidden_state']);
    const query = m.node('/encoder/layer.0/attention/self/query/MatMul');
    expect(query.input[1]).toMatch(/^onnx::MatMul_\d+$/);
    expect(m.dims(query.input[1]!)).toEqual([32, 32]);
    const bias = m.node('/encoder/layer.0/attention/self/query/Add');
    expect(bias.input[0]).toBe('encoder.layer.0.attention.self.query.bias');
    expect(count(m, 'LayerNormalization')).toBe(1 + 2 * 2);
    expect(count(m, 'Erf')).toBe(2);
    const div = m.node('/encoder/layer.1/attention/self/Div');
    expect(m.values(div.input[1]!)[0]).toBeCloseTo(Math.sqrt(8), 6);
    // The [B, S, heads, head_dim] reshape target: Concat of two traced sizes and two Constants.
    const reshape = m.index.consumers('/encoder/layer.0/attention/self/key/Add_output_0').find((n) => n.opType === 'Reshape')!;
    const concat = m.index.producer(reshape.input[1]!)!;
    expect(concat.input.slice(2).map((c) => constantInts(m, c)[0])).toEqual([4, 8]);
    expect(m.file.model.opsetImport).toEqual([expect.objectContaining({ version: 17 })]);
  });

  test('roberta: no token_type_ids input, zero token-type buffer, padding-offset positions, decomposed LayerNorm', () => {
    const m = open('roberta-tiny');
    expect(m.file.model.graph!.input.map((i) => i.name)).toEqual(['input_ids', 'attention_mask']);
    expect(m.ints('embeddings.token_type_ids').every((v) => v === 0)).toBe(true);
    // Positions run from padding_idx + 1 (pad id 0 here) to padding_idx + max_positions.
    expect(m.dims('embeddings.position_embeddings.weight')).toEqual([64 + 1, 32]);
    expect(count(m, 'CumSum')).toBe(1);
    expect(count(m, 'LayerNormalization')).toBe(0);
    expect(count(m, 'ReduceMean')).toBe(2 * (1 + 2 * 2));
  });

  test('distilbert: q_lin/k_lin/v_lin/out_lin, per-layer masked_fill, (-1, heads, head_dim) view', () => {
    const m = open('distilbert-tiny');
    expect(m.file.model.graph!.input.map((i) => i.name)).toEqual(['input_ids', 'attention_mask']);
    for (const lin of ['q_lin', 'k_lin', 'v_lin', 'out_lin']) {
      expect(m.index.initializer(`transformer.layer.1.attention.${lin}.bias`)).toBeDefined();
    }
    expect(count(m, 'Where')).toBe(2);
    const view = m.index.consumers('/transformer/layer.0/attention/q_lin/Add_output_0').find((n) => n.opType === 'Reshape')!;
    const pieces = m.index.producer(view.input[1]!)!.input.slice(1).map((c) => constantInts(m, c)[0]);
    expect(pieces).toEqual([-1, 4, 8]);
  });

  test('electra: embedding_size projected by embeddings_project', () => {
    const m = open('electra-tiny');
    expect(m.dims('embeddings.word_embeddings.weight')).toEqual([384, 16]);
    expect(m.dims(m.node('/embeddings_project/MatMul').input[1]!)).toEqual([16, 32]);
  });

  test('gpt2: Conv1D as Gemm, fused c_attn split by a Constant, KV cache I/O, tied lm_head copy', () => {
    const m = open('gpt2-tiny');
    const graph = m.file.model.graph!;
    expect(graph.input.map((i) => i.name)).toEqual([
      'input_ids', 'attention_mask', 'position_ids',
      'past_key_values.0.key', 'past_key_values.0.value', 'past_key_values.1.key', 'past_key_values.1.value',
    ]);
    expect(graph.output.map((o) => o.name)).toEqual(['logits', 'present.0.key', 'present.0.value', 'present.1.key', 'present.1.value']);
    const past = graph.input[3]!.type!.tensorType!.shape!.dim;
    expect(past).toEqual([{ dimParam: 'batch_size' }, { dimValue: 4 }, { dimParam: 'past_sequence_length' }, { dimValue: 8 }]);
    const gemm = m.node('/transformer/h.0/attn/c_attn/Gemm');
    expect(gemm.input.slice(1)).toEqual(['transformer.h.0.attn.c_attn.weight', 'transformer.h.0.attn.c_attn.bias']);
    expect(m.dims('transformer.h.0.attn.c_attn.weight')).toEqual([32, 96]);
    const split = m.node('/transformer/h.0/attn/Split');
    expect(constantInts(m, split.input[1]!)).toEqual([32, 32, 32]);
    expect(count(m, 'Tanh')).toBe(2);
    const head = m.node('/lm_head/MatMul');
    expect(m.dims(head.input[1]!)).toEqual([32, 384]);
    const wte = m.values('transformer.wte.weight');
    const lm = m.values(head.input[1]!);
    let maxDiff = 0;
    for (let v = 0; v < 384; v++) for (let h = 0; h < 32; h++) maxDiff = Math.max(maxDiff, Math.abs(wte[v * 32 + h]! - lm[h * 384 + v]!));
    expect(maxDiff).toBe(0);
  });

  test('llama: RMSNorm decomposition, rotary frequencies, repeat_kv constants, heads in reshape targets', () => {
    const m = open('llama-tiny');
    expect(m.index.initializer('model.layers.0.input_layernorm.weight')).toBeDefined();
    const inverse = m.file.model.graph!.initializer.find((t) => t.name?.startsWith('onnx::Mul_'))!;
    expect(inverse.dims).toEqual([1, 1, 4]);
    expect(Array.from(m.values(inverse.name!))).toEqual(Array.from(Float32Array.of(1, 0.1, 0.01, 0.001)));
    expect(count(m, 'Sqrt')).toBe(2 * 2 + 1);
    const expand = m.nodes.filter((n) => n.opType === 'Expand' && n.name?.startsWith('/model/layers.0/'));
    expect(expand).toHaveLength(2);
    const expandShape = m.index.producer(m.index.producer(m.index.producer(expand[0]!.input[1]!)!.input[2]!)!.input[0]!)!;
    expect(expandShape.input.slice(1, 3).map((c) => constantInts(m, c)[0])).toEqual([2, 2]); // kv heads, n_rep
    const qReshape = m.index.consumers(m.node('/model/layers.0/self_attn/q_proj/MatMul').output[0]!)[0]!;
    expect(m.index.producer(qReshape.input[1]!)!.input.slice(2).map((c) => constantInts(m, c)[0])).toEqual([4, 8]);
    expect(m.dims(m.node('/model/layers.0/self_attn/k_proj/MatMul').input[1]!)).toEqual([32, 16]);
    expect(m.index.initializer('model.layers.0.self_attn.q_proj.bias')).toBeUndefined();
  });

  test('qwen2 has q/k/v biases; mistral with one kv head repeats it to every query head', () => {
    const q = open('qwen2-tiny');
    for (const p of ['q_proj', 'k_proj', 'v_proj']) expect(q.index.initializer(`model.layers.1.self_attn.${p}.bias`)).toBeDefined();
    expect(q.index.initializer('model.layers.1.self_attn.o_proj.bias')).toBeUndefined();
    const m = open('mistral-tiny');
    const past = m.file.model.graph!.input.find((i) => i.name === 'past_key_values.1.value')!;
    expect(past.type!.tensorType!.shape!.dim[1]).toEqual({ dimValue: 1 });
  });

  test('non-uniform layers: per-layer shapes in weights, reshape constants and cache dims', () => {
    const m = open('llama-nonuniform');
    expect(m.dims(m.node('/model/layers.1/self_attn/q_proj/MatMul').input[1]!)).toEqual([32, 16]);
    expect(m.dims(m.node('/model/layers.2/mlp/down_proj/MatMul').input[1]!)).toEqual([20, 32]);
    const dims = (name: string) => m.file.model.graph!.input.find((i) => i.name === name)!.type!.tensorType!.shape!.dim[1];
    expect([dims('past_key_values.0.key'), dims('past_key_values.1.key'), dims('past_key_values.2.key')]).toEqual([
      { dimValue: 2 }, { dimValue: 1 }, { dimValue: 1 },
    ]);
    const config = JSON.parse(readFileSync(join(fixturePath('bert-nonuniform'), 'config.json'), 'utf8'));
    expect(config.pruned_heads).toEqual({ 1: [3] });
  });
});

describe('q8 variant (onnxruntime dynamic quantization pattern)', () => {
  test('quantizeInt8 is symmetric per-tensor int8 with round-half-even', () => {
    const { scale, quantized } = quantizeInt8(Float32Array.of(0, 1, -2, 0.5, 2));
    expect(scale).toBe(Math.fround(4 / 254));
    // 1 / (2/127) = 63.5 -> 64 (ties to even), 0.5 / (2/127) = 31.75 -> 32
    expect(Array.from(quantized)).toEqual([0, 64, -127, 32, 127]);
  });

  test('llama-tiny: every MatMul weight becomes MatMulInteger with int8 weights; embeddings dequantized after Gather', () => {
    const fp32 = open('llama-tiny');
    const q = open('llama-tiny', 'model_quantized.onnx');
    expect(count(q, 'MatMul')).toBe(count(fp32, 'MatMul') - (7 * 2 + 1));
    expect(count(q, 'MatMulInteger')).toBe(7 * 2 + 1);
    // q/k/v share one quantized activation, gate/up another: 4 per layer (qkv, o, gate-up, down) + lm_head.
    expect(count(q, 'DynamicQuantizeLinear')).toBe(4 * 2 + 1);
    const node = q.node('/model/layers.0/self_attn/q_proj/MatMul_quant');
    const weight = fp32.node('/model/layers.0/self_attn/q_proj/MatMul').input[1]!;
    expect(node.input).toEqual([
      `${fp32.node('/model/layers.0/self_attn/q_proj/MatMul').input[0]}_quantized`,
      `${weight}_quantized`,
      `${fp32.node('/model/layers.0/self_attn/q_proj/MatMul').input[0]}_zero_point`,
      `${weight}_zero_point`,
    ]);
    const stored = q.index.initializer(`${weight}_quantized`)!;
    expect(stored.dataType).toBe(DataType.INT8);
    expect(q.index.initializer(`${weight}_scale`)!.dims).toEqual([]);
    expect(q.ints(`${weight}_zero_point`)).toEqual([0]);
    // Dequantized weights are within half a step of the float weights.
    const scale = q.values(`${weight}_scale`)[0]!;
    const ints = q.file.decodeTensor(stored) as Int8Array;
    const floats = fp32.values(weight);
    let worst = 0;
    for (let i = 0; i < floats.length; i++) worst = Math.max(worst, Math.abs(ints[i]! * scale - floats[i]!));
    expect(worst).toBeLessThanOrEqual(scale / 2 + 1e-7);
    expect(q.node('/model/embed_tokens/Gather').input[0]).toBe('model.embed_tokens.weight_quantized');
    expect(q.index.producer('/model/embed_tokens/Gather_output_0')!.opType).toBe('DequantizeLinear');
    expect(q.index.initializer('model.embed_tokens.weight')).toBeUndefined();
  });

  test('gpt2-tiny: Conv1D Gemms first become MatMul + Add (replace_gemm_with_matmul), then are quantized', () => {
    const q = open('gpt2-tiny', 'model_quantized.onnx');
    expect(count(q, 'Gemm')).toBe(0);
    expect(count(q, 'MatMulInteger')).toBe(4 * 2 + 1);
    const add = q.node('/transformer/h.0/mlp/c_fc/Gemm_Add');
    expect(add.input[1]).toBe('transformer.h.0.mlp.c_fc.bias');
    expect(q.index.producer(add.input[0]!)!.name).toBe('/transformer/h.0/mlp/c_fc/Gemm_MatMul_quant_output_scale_mul');
    expect(q.index.initializer('transformer.h.0.mlp.c_fc.weight_quantized')!.dataType).toBe(DataType.INT8);
    // The embedding table is quantized with the activation type: uint8, asymmetric.
    expect(q.index.initializer('transformer.wte.weight_quantized')!.dataType).toBe(DataType.UINT8);
  });

  test('bert-tiny: per-channel, reduced-range int8 weights, as convert.py quantizes encoders', () => {
    const q = open('bert-tiny', 'model_quantized.onnx');
    const fp32 = open('bert-tiny');
    const weight = fp32.node('/encoder/layer.0/attention/self/query/MatMul').input[1]!;
    expect(q.dims(`${weight}_scale`)).toEqual([32]);
    const ints = q.file.decodeTensor(q.index.initializer(`${weight}_quantized`)!) as Int8Array;
    expect(Math.max(...Array.from(ints, Math.abs))).toBe(64);
  });
});

describe('fp16 variant (transformers.js float16 conversion pattern)', () => {
  test('weights are float16, graph I/O stays float32 through casts', () => {
    const h = open('llama-tiny', 'model_fp16.onnx');
    expect(h.index.initializer('model.norm.weight')!.dataType).toBe(DataType.FLOAT16);
    const graph = h.file.model.graph!;
    expect(graph.input.find((i) => i.name === 'past_key_values.0.key')!.type!.tensorType!.elemType).toBe(DataType.FLOAT);
    expect(h.node('past_key_values.0.key_fp16').opType).toBe('Cast');
    expect(h.node('logits_fp16_input_cast0').input).toEqual(['logits_fp16']);
    const fp32 = open('llama-tiny');
    const a = fp32.values('model.norm.weight');
    const b = h.values('model.norm.weight');
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-3);
  });
});

describe('planted units', () => {
  interface Slice {
    matrix: string;
    rows: number;
    cols: number;
    /** Column range when `axis` is 'cols', row range when 'rows'. */
    axis: 'cols' | 'rows';
    start: number;
    width: number;
  }

  function sliceValues(m: Opened, s: Slice): number[] {
    const values = m.values(s.matrix);
    expect(m.dims(s.matrix)).toEqual(s.rows === 1 ? [s.cols] : [s.rows, s.cols]);
    const out: number[] = [];
    if (s.axis === 'rows') {
      for (let r = s.start; r < s.start + s.width; r++) for (let c = 0; c < s.cols; c++) out.push(values[r * s.cols + c]!);
    } else {
      for (let r = 0; r < s.rows; r++) for (let c = s.start; c < s.start + s.width; c++) out.push(values[r * s.cols + c]!);
    }
    return out;
  }

  /** Every unit: planted ones must be exactly zero in every slice, the others must not be. */
  function check(m: Opened, units: { planted: boolean; slices: Slice[] }[]): void {
    expect(units.some((u) => u.planted)).toBe(true);
    for (const unit of units) {
      for (const slice of unit.slices) {
        const values = sliceValues(m, slice);
        if (unit.planted) expect(values.every((v) => v === 0)).toBe(true);
        else expect(values.some((v) => v !== 0)).toBe(true);
      }
    }
  }

  const col = (matrix: string, rows: number, cols: number, start: number, width: number): Slice => ({ matrix, rows, cols, axis: 'cols', start, width });
  const row = (matrix: string, rows: number, cols: number, start: number, width: number): Slice => ({ matrix, rows, cols, axis: 'rows', start, width });
  const vec = (name: string, length: number, start: number, width: number): Slice => ({ matrix: name, rows: 1, cols: length, axis: 'cols', start, width });
  const isPlanted = (spec: ModelSpec, layer: number, key: 'head' | 'kvGroup' | 'neuron', index: number) =>
    (spec.planted ?? []).some((u) => u.layer === layer && key in u && (u as Record<string, number>)[key] === index);

  test('bert-planted: Q/K/V columns and biases, O rows; intermediate columns and bias, output rows', () => {
    const spec = DEFAULT_FIXTURES['bert-planted'];
    const m = open('bert-planted');
    const H = 48;
    const D = 8;
    const F = 96;
    const w = (l: number, role: string) => m.node(`/encoder/layer.${l}/${role}/MatMul`).input[1]!;
    const units: { planted: boolean; slices: Slice[] }[] = [];
    for (let l = 0; l < 3; l++) {
      for (let h = 0; h < 6; h++) {
        const slices = ['query', 'key', 'value'].flatMap((p) => [
          col(w(l, `attention/self/${p}`), H, H, h * D, D),
          vec(`encoder.layer.${l}.attention.self.${p}.bias`, H, h * D, D),
        ]);
        slices.push(row(w(l, 'attention/output/dense'), H, H, h * D, D));
        units.push({ planted: isPlanted(spec, l, 'head', h), slices });
      }
      for (let n = 0; n < F; n++) {
        units.push({
          planted: isPlanted(spec, l, 'neuron', n),
          slices: [
            col(w(l, 'intermediate/dense'), H, F, n, 1),
            vec(`encoder.layer.${l}.intermediate.dense.bias`, F, n, 1),
            row(w(l, 'output/dense'), F, H, n, 1),
          ],
        });
      }
    }
    check(m, units);
  });

  test('gpt2-planted: q, k and v column blocks of the fused c_attn and its bias, c_proj rows; c_fc columns, mlp.c_proj rows', () => {
    const spec = DEFAULT_FIXTURES['gpt2-planted'];
    const m = open('gpt2-planted');
    const H = 48;
    const D = 12;
    const F = 96;
    const units: { planted: boolean; slices: Slice[] }[] = [];
    for (let l = 0; l < 3; l++) {
      const p = `transformer.h.${l}`;
      for (let h = 0; h < 4; h++) {
        const slices = [0, 1, 2].flatMap((part) => [
          col(`${p}.attn.c_attn.weight`, H, 3 * H, part * H + h * D, D),
          vec(`${p}.attn.c_attn.bias`, 3 * H, part * H + h * D, D),
        ]);
        slices.push(row(`${p}.attn.c_proj.weight`, H, H, h * D, D));
        units.push({ planted: isPlanted(spec, l, 'head', h), slices });
      }
      for (let n = 0; n < F; n++) {
        units.push({
          planted: isPlanted(spec, l, 'neuron', n),
          slices: [col(`${p}.mlp.c_fc.weight`, H, F, n, 1), vec(`${p}.mlp.c_fc.bias`, F, n, 1), row(`${p}.mlp.c_proj.weight`, F, H, n, 1)],
        });
      }
    }
    check(m, units);
  });

  test('llama-planted: a kv group zeroes K/V and its query heads; a head zeroes only its Q and O slices', () => {
    const spec = DEFAULT_FIXTURES['llama-planted'];
    const m = open('llama-planted');
    const H = 64;
    const D = 8;
    const F = 128;
    const w = (l: number, p: string) => m.node(`/model/layers.${l}/${p}/MatMul`).input[1]!;
    const units: { planted: boolean; slices: Slice[] }[] = [];
    for (let l = 0; l < 3; l++) {
      for (let g = 0; g < 4; g++) {
        const planted = isPlanted(spec, l, 'kvGroup', g);
        units.push({ planted, slices: [col(w(l, 'self_attn/k_proj'), H, 32, g * D, D), col(w(l, 'self_attn/v_proj'), H, 32, g * D, D)] });
      }
      for (let h = 0; h < 8; h++) {
        const planted = isPlanted(spec, l, 'head', h) || isPlanted(spec, l, 'kvGroup', Math.floor(h / 2));
        units.push({ planted, slices: [col(w(l, 'self_attn/q_proj'), H, H, h * D, D), row(w(l, 'self_attn/o_proj'), H, H, h * D, D)] });
      }
      for (let n = 0; n < F; n++) {
        units.push({
          planted: isPlanted(spec, l, 'neuron', n),
          slices: [col(w(l, 'mlp/gate_proj'), H, F, n, 1), col(w(l, 'mlp/up_proj'), H, F, n, 1), row(w(l, 'mlp/down_proj'), F, H, n, 1)],
        });
      }
    }
    check(m, units);
  });
});

describe('big shapes', () => {
  test.each(Object.keys(BENCHMARK_SPECS) as (keyof typeof BENCHMARK_SPECS)[])(
    '%s builds its graph without drawing any weight, with the expected parameter count',
    (name) => {
      const spec = resolveSpec(BENCHMARK_SPECS[name]);
      const started = Date.now();
      const graph = buildModelGraph(spec);
      const built = Date.now() - started;
      const params = graph.initializers
        .filter((i) => i.dataType === DataType.FLOAT)
        .reduce((sum, i) => sum + i.dims.reduce((a, b) => a * b, 1), 0);
      const H = spec.hidden;
      const F = spec.ffn;
      let expected: number;
      if (spec.family === 'bert') {
        // embeddings (+2 LayerNorm vectors), per layer 4 HxH + 4 H biases + 2 HxF + F + H biases + 4 LayerNorm vectors.
        expected = (spec.vocab + spec.maxPositions + 2) * H + 2 * H + spec.layers * (4 * H * H + 4 * H + 2 * H * F + F + H + 4 * H);
      } else {
        const kv = spec.kvHeads * spec.headDim;
        const q = spec.heads * spec.headDim;
        expected = 2 * spec.vocab * H + H + spec.headDim / 2 + spec.layers * (H * q + 2 * H * kv + q * H + 3 * H * F + 2 * H);
      }
      expect(params).toBe(expected);
      expect(built).toBeLessThan(5000); // graph building is linear in layers, not in weights
    },
  );
});

describe('ensureFixtures', () => {
  test('regenerates a fixture only when it is missing or stamped by another generator version', () => {
    const root = join(scratch, 'ensure');
    const dir = ensureFixtures(['distilbert-tiny'], root)['distilbert-tiny']!;
    const model = join(dir, 'onnx', 'model.onnx');
    const first = statSync(model).mtimeMs;
    ensureFixtures(['distilbert-tiny'], root);
    expect(statSync(model).mtimeMs).toBe(first);
    const configFile = join(dir, 'config.json');
    const config = JSON.parse(readFileSync(configFile, 'utf8'));
    config.zerolm_fixture.generator_version = -1;
    writeFileSync(configFile, JSON.stringify(config));
    expect(isCurrent(dir, DEFAULT_FIXTURES['distilbert-tiny'])).toBe(false);
    ensureFixtures(['distilbert-tiny'], root);
    expect(isCurrent(dir, DEFAULT_FIXTURES['distilbert-tiny'])).toBe(true);
    expect(() => ensureFixtures(['no-such-fixture'], root)).toThrow(/unknown fixture 'no-such-fixture'/);
  });
});

describe('cli', () => {
  function run(args: string[]): { code: number; out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    const code = runCli(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out, err };
  }

  test('writes a model folder from flags', () => {
    const dir = join(scratch, 'cli-qwen2');
    const result = run([
      '--family', 'qwen2', '--layers', '1', '--hidden', '32', '--heads', '4', '--kv-heads', '2', '--ffn', '48',
      '--vocab', '100', '--plant-kv-group', '0:1', '--plant-neuron', '0:5', '--variants', 'q8', '--out', dir,
    ]);
    expect(result.code).toBe(0);
    expect(readdirSync(join(dir, 'onnx')).sort()).toEqual(['model.onnx', 'model_quantized.onnx']);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model_type: 'qwen2', num_key_value_heads: 2, intermediate_size: 48 });
    expect(config.zerolm_fixture.spec.planted).toEqual([{ layer: 0, kvGroup: 1 }, { layer: 0, neuron: 5 }]);
  });

  test.each([
    [['--family', 'bert', '--layers', '2', '--hidden', '30', '--heads', '4', '--ffn', '8', '--vocab', '50', '--out', '/tmp/x'], /invalid model spec: hidden \(30\)/],
    [['--family', 'bert', '--layers', 'two', '--out', '/tmp/x'], /--layers must be a number/],
    [['--fixture', 'nope', '--out', '/tmp/x'], /unknown fixture 'nope'/],
    [['--bogus'], /bogus/],
  ])('bad input %j gives one line and exit code 2', (args, message) => {
    const result = run(args as string[]);
    expect(result.code).toBe(2);
    expect(result.err).toHaveLength(1);
    expect(result.err[0]).toMatch(message);
  });
});
