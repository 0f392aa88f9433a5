/**
 * BERT as onnxruntime's transformer optimizer leaves it (`optimizer.py --model_type bert`,
 * `onnx_model_bert.py : BertOnnxModel.optimize`; /work/notes/graph-styles.md §B):
 *
 * - the ids and mask `Cast` to int32 (`input_ids_int32`, ...), then `EmbedLayerNormalization_0`
 *   (word, position and token-type tables, the embedding LayerNorm; with the mask as input 7 it
 *   writes the mask index, `EmbedLayerNormalization_0_dummy_mask_index`, every Attention reads);
 * - per layer `Attention_<k>` (com.microsoft): the packed weight `Attention_<k>_qkv_weight`
 *   `[hidden, q | k | v]` and bias `Attention_<k>_qkv_bias`, `num_heads`; the output dense MatMul
 *   kept from torch (`onnx::MatMul_<id>`); `SkipLayerNorm_AddBias_<j>` (input, skip, gamma, beta,
 *   and the dense bias in input 4); the intermediate MatMul; `Gelu_AddBias_<k>` (BiasGelu, the
 *   intermediate bias in input 1); the output MatMul; `SkipLayerNorm_AddBias_<j+1>`;
 * - `ort-fused-mha` (the optimizer's `use_multi_head_attention`): the q/k/v MatMuls stay and
 *   `MultiHeadAttention` (named `Attention_<k>`) takes their results with the packed q|k|v bias in
 *   input 3 and the int32 mask as key padding mask; GELU is tanh-approximated, `FastGelu_AddBias_<k>`.
 *
 * Weights are drawn under the Hugging Face state-dict names, so `style: 'ort-fused'` computes what
 * the torch-style BERT of the same spec computes.
 */
import { DataType, makeValueInfo, type NodeProto } from '@zerolm/onnx';
import { attr, makeNode, type BuiltGraph, type LazyInitializer } from './graph-builder';
import { layerNormEpsilon, positionTableSize } from './encoders';
import type { ResolvedSpec } from './spec';
import { drawTensor, plantedSlices, zeroColumns, zeroEntries, zeroRows } from './weights';

const TEXT_DIMS = ['batch_size', 'sequence_length'];

export function buildFusedEncoder(spec: ResolvedSpec): BuiltGraph {
  const mha = spec.style === 'ort-fused-mha';
  const nodes: NodeProto[] = [];
  const initializers: LazyInitializer[] = [];
  let nextId = 200;
  const node = (op: string, name: string, inputs: string[], outputs: string[], attributes: ReturnType<typeof attr.int>[] = [], domain?: string): string => {
    const n = makeNode(op, name, inputs, outputs, attributes);
    if (domain) n.domain = domain;
    nodes.push(n);
    return outputs[0]!;
  };
  const param = (name: string, dims: number[], values: () => Float32Array): string => {
    initializers.push({ name, dataType: DataType.FLOAT, dims, values });
    return name;
  };
  const anonymous = (dims: number[], values: () => Float32Array): string => param(`onnx::MatMul_${nextId++}`, dims, values);
  const D = spec.hidden;
  const H = spec.headDim;
  const eps = layerNormEpsilon(spec.family);

  const inputs = [
    makeValueInfo('input_ids', DataType.INT64, TEXT_DIMS),
    makeValueInfo('attention_mask', DataType.INT64, TEXT_DIMS),
    makeValueInfo('token_type_ids', DataType.INT64, TEXT_DIMS),
  ];
  const outputs = [makeValueInfo('last_hidden_state', DataType.FLOAT, [...TEXT_DIMS, D])];
  for (const name of ['input_ids', 'token_type_ids', 'attention_mask']) node('Cast', '', [name], [`${name}_int32`], [attr.int('to', DataType.INT32)]);

  const table = (name: string, rows: number) => param(name, [rows, D], () => drawTensor(spec, name, 'embedding', rows, D));
  const norm = (prefix: string) => [
    param(`${prefix}.weight`, [D], () => drawTensor(spec, `${prefix}.weight`, 'norm-weight', D)),
    param(`${prefix}.bias`, [D], () => drawTensor(spec, `${prefix}.bias`, 'norm-bias', D)),
  ];
  const [gamma, beta] = norm('embeddings.LayerNorm');
  const embedOutputs = ['EmbedLayerNormalization_0_output', 'EmbedLayerNormalization_0_dummy_mask_index'];
  node(
    'EmbedLayerNormalization',
    'EmbedLayerNormalization_0',
    [
      'input_ids_int32', 'token_type_ids_int32',
      table('embeddings.word_embeddings.weight', spec.vocab),
      table('embeddings.position_embeddings.weight', positionTableSize(spec)),
      table('embeddings.token_type_embeddings.weight', 2),
      gamma!, beta!,
      ...(mha ? [] : ['attention_mask_int32']),
    ],
    embedOutputs,
    [attr.float('epsilon', eps)],
    'com.microsoft',
  );

  let x = 'EmbedLayerNormalization_0_output';
  let sln = 0;
  for (let l = 0; l < spec.layers; l++) {
    const shape = spec.perLayer[l]!;
    const width = shape.heads * H;
    const planted = plantedSlices(spec, l);
    const p = `encoder.layer.${l}`;
    const s = `/encoder/layer.${l}`;
    const part = (name: 'query' | 'key' | 'value', heads: number[]) => ({
      weight: () => {
        const w = drawTensor(spec, `${p}.attention.self.${name}.weight`, 'matrix', D, width);
        zeroColumns(w, D, width, heads, H);
        return w;
      },
      bias: () => {
        const b = drawTensor(spec, `${p}.attention.self.${name}.bias`, 'bias', width);
        zeroEntries(b, heads, H);
        return b;
      },
    });
    const parts = [part('query', planted.queryHeads), part('key', planted.kvHeads), part('value', planted.kvHeads)];
    const packedBias = () => {
      const out = new Float32Array(3 * width);
      parts.forEach((pt, i) => out.set(pt.bias(), i * width));
      return out;
    };
    const context = `${s}/attention/self/Reshape_3_output_0`;
    if (mha) {
      const names = ['query', 'key', 'value'];
      const projected = parts.map((pt, i) => node('MatMul', `${s}/attention/self/${names[i]}/MatMul`, [x, anonymous([D, width], pt.weight)], [`${s}/attention/self/${names[i]}/MatMul_output_0`]));
      node('MultiHeadAttention', `Attention_${l}`, [...projected, param(`Attention_${l}_qkv_bias`, [3 * width], packedBias), 'attention_mask_int32'], [context], [attr.int('num_heads', shape.heads)], 'com.microsoft');
    } else {
      const weight = param(`Attention_${l}_qkv_weight`, [D, 3 * width], () => {
        const ws = parts.map((pt) => pt.weight());
        const out = new Float32Array(D * 3 * width);
        for (let r = 0; r < D; r++) ws.forEach((w, i) => out.set(w.subarray(r * width, (r + 1) * width), r * 3 * width + i * width));
        return out;
      });
      node('Attention', `Attention_${l}`, [x, weight, param(`Attention_${l}_qkv_bias`, [3 * width], packedBias), 'EmbedLayerNormalization_0_dummy_mask_index'], [context], [attr.int('num_heads', shape.heads)], 'com.microsoft');
    }
    const dense = node('MatMul', `${s}/attention/output/dense/MatMul`, [context, anonymous([width, D], () => {
      const w = drawTensor(spec, `${p}.attention.output.dense.weight`, 'matrix', width, D);
      zeroRows(w, D, planted.queryHeads, H);
      return w;
    })], [`${s}/attention/output/dense/MatMul_output_0`]);
    const skipNorm = (input: string, skip: string, prefix: string, biasKey: string, output: string) => {
      const [g2, b2] = norm(prefix);
      return node('SkipLayerNormalization', `SkipLayerNorm_AddBias_${sln++}`, [input, skip, g2!, b2!, param(biasKey, [D], () => drawTensor(spec, biasKey, 'bias', D))], [output], [attr.float('epsilon', eps)], 'com.microsoft');
    };
    const attended = skipNorm(dense, x, `${p}.attention.output.LayerNorm`, `${p}.attention.output.dense.bias`, `${s}/attention/output/LayerNorm/Add_1_output_0`);
    const up = node('MatMul', `${s}/intermediate/dense/MatMul`, [attended, anonymous([D, shape.ffn], () => {
      const w = drawTensor(spec, `${p}.intermediate.dense.weight`, 'matrix', D, shape.ffn);
      zeroColumns(w, D, shape.ffn, planted.neurons, 1);
      return w;
    })], [`${s}/intermediate/dense/MatMul_output_0`]);
    const upBias = param(`${p}.intermediate.dense.bias`, [shape.ffn], () => {
      const b = drawTensor(spec, `${p}.intermediate.dense.bias`, 'bias', shape.ffn);
      zeroEntries(b, planted.neurons, 1);
      return b;
    });
    const activated = mha
      ? node('FastGelu', `FastGelu_AddBias_${l}`, [up, upBias], [`FastGelu_AddBias_${l}_output`], [], 'com.microsoft')
      : node('BiasGelu', `Gelu_AddBias_${l}`, [up, upBias], [`Gelu_AddBias_${l}_output`], [], 'com.microsoft');
    const down = node('MatMul', `${s}/output/dense/MatMul`, [activated, anonymous([shape.ffn, D], () => {
      const w = drawTensor(spec, `${p}.output.dense.weight`, 'matrix', shape.ffn, D);
      zeroRows(w, D, planted.neurons, 1);
      return w;
    })], [`${s}/output/dense/MatMul_output_0`]);
    x = skipNorm(down, attended, `${p}.output.LayerNorm`, `${p}.output.dense.bias`, l === spec.layers - 1 ? 'last_hidden_state' : `${s}/output/LayerNorm/Add_1_output_0`);
  }
  return { name: 'main_graph', nodes, initializers, inputs, outputs };
}
