/**
 * Every weight format transformers.js loads, as the generator writes it (transformers.js's
 * quantize.py with onnxruntime's quantizers): node and tensor names, shapes and types per
 * format, and every family in every format running in onnxruntime.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DataType, GraphIndex, intAttribute, loadModel, resolveMatMulWeight, type LoadedModel } from '@zerolm/onnx';
import { ensureFixtures, FAMILIES, fixturePath, generateModel, VARIANT_FILES, VARIANTS, type ModelSpec } from '../src';

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'zerolm-formats-'));
  ensureFixtures(['llama-formats']);
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function open(file: string): { loaded: LoadedModel; index: GraphIndex } {
  const loaded = loadModel(join(fixturePath('llama-formats'), file));
  return { loaded, index: new GraphIndex(loaded.model.graph!) };
}

const fp32 = () => open(VARIANT_FILES.fp32);
const LINEARS = 7 * 2 + 1; // q, k, v, o, gate, up, down per layer + the LM head

test('q4: every MatMul with a 2-D weight initializer becomes MatMulNBits <node>_Q4 (bits 4, block 32, symmetric)', () => {
  const source = fp32();
  const { loaded, index } = open(VARIANT_FILES.q4);
  const nbits = index.nodesOfType('MatMulNBits');
  expect(nbits).toHaveLength(LINEARS);
  const original = source.loaded.model.graph!.node.find((n) => n.name === '/model/layers.0/mlp/down_proj/MatMul')!;
  const node = loaded.model.graph!.node.find((n) => n.name === '/model/layers.0/mlp/down_proj/MatMul_Q4')!;
  const weight = original.input[1]!;
  expect(node.domain).toBe('com.microsoft');
  expect(node.input).toEqual([original.input[0], `${weight}_Q4`, `${weight}_scales`]);
  expect(node.output).toEqual(original.output);
  expect(node.attribute.map((a) => a.name)).toEqual(['K', 'N', 'bits', 'block_size']);
  expect([intAttribute(node, 'K'), intAttribute(node, 'N'), intAttribute(node, 'bits'), intAttribute(node, 'block_size')]).toEqual([96, 64, 4, 32]);
  expect(index.initializer(`${weight}_Q4`)!.dims).toEqual([64, 3, 16]);
  expect(index.initializer(`${weight}_scales`)!.dims).toEqual([64 * 3]);
  expect(index.initializer(`${weight}_scales`)!.dataType).toBe(DataType.FLOAT);
  expect(index.initializer(weight)).toBeUndefined();
  // The embedding stays float (the quantizer converts MatMuls only).
  expect(index.initializer('model.embed_tokens.weight')!.dataType).toBe(DataType.FLOAT);
  expect(loaded.model.opsetImport).toContainEqual(expect.objectContaining({ domain: 'com.microsoft', version: 1 }));
  // Dequantized, the weight is the fp32 weight within a step (the clamped side of [-8, 7] loses one).
  const resolved = resolveMatMulWeight(index, node)!.values();
  const exact = resolveMatMulWeight(source.index, original)!.values();
  const scales = loaded.decodeTensorAsFloat32(index.initializer(`${weight}_scales`)!);
  const step = Math.max(...Array.from(scales, Math.abs));
  for (let i = 0; i < exact.length; i++) expect(Math.abs(resolved[i]! - exact[i]!)).toBeLessThanOrEqual(step + 1e-6);
});

test('q4f16: the q4 graph in float16 (scales and activations), graph I/O float32', () => {
  const { loaded, index } = open(VARIANT_FILES.q4f16);
  expect(index.nodesOfType('MatMulNBits')).toHaveLength(LINEARS);
  const node = index.nodesOfType('MatMulNBits')[0]!;
  expect(index.initializer(node.input[2]!)!.dataType).toBe(DataType.FLOAT16);
  expect(index.initializer(node.input[1]!)!.dataType).toBe(DataType.UINT8);
  expect(index.initializer('model.embed_tokens.weight')!.dataType).toBe(DataType.FLOAT16);
  const graph = loaded.model.graph!;
  expect(graph.input.find((i) => i.name === 'past_key_values.0.key')!.type!.tensorType!.elemType).toBe(DataType.FLOAT);
  expect(graph.output.find((o) => o.name === 'logits')!.type!.tensorType!.elemType).toBe(DataType.FLOAT);
  expect(index.producer('logits')!.name).toBe('logits_fp16_input_cast0');
});

test('bnb4: MatMulBnb4 <node>_Bnb4 with NF4 codes of W^T and one absmax per 64 values', () => {
  const source = fp32();
  const { index } = open(VARIANT_FILES.bnb4);
  expect(index.nodesOfType('MatMulBnb4')).toHaveLength(LINEARS);
  const original = source.loaded.model.graph!.node.find((n) => n.name === '/model/layers.1/self_attn/o_proj/MatMul')!;
  const node = index.nodesOfType('MatMulBnb4').find((n) => n.name === '/model/layers.1/self_attn/o_proj/MatMul_Bnb4')!;
  const weight = original.input[1]!;
  expect(node.input).toEqual([original.input[0], `${weight}_Bnb4`, `${weight}_absmax`]);
  expect(node.attribute.map((a) => [a.name, Number(a.i)])).toEqual([['K', 64], ['N', 64], ['block_size', 64], ['quant_type', 1]]);
  expect(index.initializer(`${weight}_Bnb4`)!.dims).toEqual([64 * 64 / 2]);
  expect(index.initializer(`${weight}_absmax`)!.dims).toEqual([64]);
});

test.each([
  ['int8', DataType.INT8],
  ['uint8', DataType.UINT8],
] as const)('%s: MatMulInteger weights of that type, embeddings uint8 behind DequantizeLinear', (variant, type) => {
  const { loaded, index } = open(VARIANT_FILES[variant]);
  const node = index.nodesOfType('MatMulInteger')[0]!;
  expect(index.nodesOfType('MatMulInteger')).toHaveLength(LINEARS);
  expect(index.initializer(node.input[1]!)!.dataType).toBe(type);
  const zeroPoint = loaded.decodeTensor(index.initializer(node.input[3]!)!);
  if (variant === 'int8') expect(Array.from(zeroPoint as Int8Array)).toEqual([0]);
  else expect(zeroPoint[0]).toBeGreaterThan(0); // asymmetric
  expect(index.initializer('model.embed_tokens.weight_quantized')!.dataType).toBe(DataType.UINT8);
});

test('every family in every format runs in onnxruntime', async () => {
  const base = { layers: 1, hidden: 32, heads: 2, ffn: 64, vocab: 64, maxPositions: 16, seed: 3, variants: [...VARIANTS] };
  for (const family of FAMILIES) {
    const spec = { ...base, family, ...(family === 'llama' || family === 'qwen2' || family === 'mistral' ? { kvHeads: 1 } : {}) } as ModelSpec;
    const dir = join(scratch, family);
    generateModel(spec, dir);
    for (const variant of ['fp32', ...VARIANTS] as const) {
      const session = await ort.InferenceSession.create(join(dir, VARIANT_FILES[variant]));
      try {
        const feeds: Record<string, ort.Tensor> = {};
        for (const meta of session.inputMetadata) {
          const name = meta.name;
          if (name.startsWith('past_key_values.')) {
            const shape = (meta as unknown as { shape: (number | string)[] }).shape;
            feeds[name] = new ort.Tensor('float32', new Float32Array(0), [1, shape[1] as number, 0, shape[3] as number]);
          } else {
            const values = { position_ids: [0n, 1n, 2n], attention_mask: [1n, 1n, 1n], token_type_ids: [0n, 0n, 0n] }[name] ?? [5n, 9n, 7n];
            feeds[name] = new ort.Tensor('int64', BigInt64Array.from(values), [1, 3]);
          }
        }
        const outputs = await session.run(feeds);
        const main = (outputs['logits'] ?? outputs['last_hidden_state'])!.data as Float32Array;
        expect({ family, variant, finite: main.every(Number.isFinite) }).toEqual({ family, variant, finite: true });
      } finally {
        await session.release();
      }
    }
  }
});
