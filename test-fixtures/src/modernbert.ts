/**
 * ModernBERT (`ModernBertForMaskedLM`, the architecture of transformers.js' default fill-mask
 * model) as its Hugging Face modeling code computes it and torch.onnx exports it
 * (/work/notes/families-encoders.md §1): no biases anywhere but the decoder's; LayerNorms without
 * bias (torch's decomposition without the final Add at opset 14); layer 0 has no attention norm;
 * `Wqkv` `[hidden, 3 * hidden]` viewed `(bs, -1, 3, heads, head_dim)`, transposed (3, 1) and
 * unbound on the `3` axis (Split, Squeeze); RoPE on the whole head with a global base on global
 * layers (every third, from 0) and a local base on the others; eager attention scaled by
 * `head_dim^-0.5`; `Wi` `[hidden, 2 * intermediate]` chunked into input and gate,
 * `Wo(gelu(input) * gate)`; `final_norm`; the MLM head `dense` (no bias), GELU, `norm`, and the
 * decoder tied to the token embeddings with `decoder.bias`. The body lives under `/model`
 * (`model.` keys). The local window (128) is wider than the fixture's positions, so the sliding
 * layers' mask is the global one; the eager pattern stands in for SDPA (same computation).
 */
import { DataType } from '@zerolm/onnx';
import { ropeTables, rotary } from './decoders';
import { attr, FLOAT32_MIN, GraphBuilder, type BuiltGraph } from './graph-builder';
import { attentionCore, geluErf, linear, packedWeight, paddingMask, parameter } from './patterns';
import type { ResolvedSpec } from './spec';
import { drawTensor, plantedSlices, transpose, zeroRows } from './weights';

export const MODERNBERT = { globalRopeTheta: 160000, localRopeTheta: 10000, globalEvery: 3, localAttention: 128, normEps: 1e-5 } as const;

const TEXT_DIMS = ['batch_size', 'sequence_length'];

/** `nn.LayerNorm(bias=False)` at opset 14: ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div, Mul weight. */
function layerNormNoBias(g: GraphBuilder, spec: ResolvedSpec, scope: string, input: string, prefix: string, output?: string): string {
  const weight = g.initializer({ name: `${prefix}.weight`, dataType: DataType.FLOAT, dims: [spec.hidden], values: parameter(spec, `${prefix}.weight`, 'norm-weight', spec.hidden) });
  const axes = [attr.ints('axes', [-1])];
  const mean = g.op1(scope, 'ReduceMean', [input], { attrs: axes });
  const centered = g.op1(scope, 'Sub', [input, mean]);
  const variance = g.op1(scope, 'ReduceMean', [g.op1(scope, 'Pow', [centered, g.constFloat(scope, 2)])], { attrs: axes });
  const std = g.op1(scope, 'Sqrt', [g.op1(scope, 'Add', [variance, g.constFloat(scope, MODERNBERT.normEps)])]);
  return g.op1(scope, 'Mul', [g.op1(scope, 'Div', [centered, std]), weight], output ? { outputs: [output] } : {});
}

/** `x.chunk(2, dim=-1)` as torch.onnx writes it (Slices with bounds from the traced size). */
function chunkTwo(g: GraphBuilder, scope: string, x: string): [string, string] {
  const size = g.op1(scope, 'Gather', [g.op1(scope, 'Shape', [x]), g.constInt64(scope, [-1])], { attrs: [attr.int('axis', 0)] });
  const chunk = g.op1(scope, 'Div', [g.op1(scope, 'Add', [size, g.constInt64(scope, [1])]), g.constInt64(scope, [2])]);
  const first = g.op1(scope, 'Slice', [x, g.constInt64(scope, [0]), g.op1(scope, 'Mul', [chunk, g.constInt64(scope, [1])]), g.constInt64(scope, [-1]), g.constInt64(scope, [1])]);
  const second = g.op1(scope, 'Slice', [x, g.op1(scope, 'Mul', [chunk, g.constInt64(scope, [1])]), g.op1(scope, 'Mul', [chunk, g.constInt64(scope, [2])]), g.constInt64(scope, [-1]), g.constInt64(scope, [1])]);
  return [first, second];
}

/** ModernBERT's layer types: global attention every third layer from layer 0. */
export function modernbertGlobal(layer: number): boolean {
  return layer % MODERNBERT.globalEvery === 0;
}

export function buildModernBert(spec: ResolvedSpec): BuiltGraph {
  const g = new GraphBuilder();
  const inputIds = g.input('input_ids', DataType.INT64, TEXT_DIMS);
  const attentionMask = g.input('attention_mask', DataType.INT64, TEXT_DIMS);
  const mlm = spec.task === 'fill-mask';
  if (mlm) g.output('logits', DataType.FLOAT, [...TEXT_DIMS, spec.vocab]);
  else g.output('last_hidden_state', DataType.FLOAT, [...TEXT_DIMS, spec.hidden]);
  const b = mlm ? '/model' : '';
  const k = mlm ? 'model.' : '';
  const D = spec.headDim;
  const H = spec.hidden;

  const table = `${k}embeddings.tok_embeddings.weight`;
  const words = g.op1(`${b}/embeddings/tok_embeddings`, 'Gather', [
    g.initializer({ name: table, dataType: DataType.FLOAT, dims: [spec.vocab, H], values: () => drawTensor(spec, table, 'embedding', spec.vocab, H) }),
    inputIds,
  ]);
  let x = layerNormNoBias(g, spec, `${b}/embeddings/norm`, words, `${k}embeddings.norm`);
  const mask = paddingMask(g, b, attentionMask, FLOAT32_MIN);
  // position_ids = arange(seq): cos/sin per base (global, local).
  const sequence = g.size(b, inputIds, 1);
  const positions = g.unsqueeze(b, g.op1(b, 'Range', [g.constInt64(b, [0], true), sequence, g.constInt64(b, [1], true)]), [0]);
  const floats = g.op1(`${b}/rotary_emb`, 'Cast', [g.unsqueeze(`${b}/rotary_emb`, positions, [2])], { attrs: [attr.int('to', DataType.FLOAT)] });
  const globalRope = ropeTables(g, spec, `${b}/rotary_emb`, floats, MODERNBERT.globalRopeTheta);
  const localRope = spec.layers > 1 ? ropeTables(g, spec, `${b}/rotary_emb_local`, floats, MODERNBERT.localRopeTheta) : globalRope;

  for (let l = 0; l < spec.layers; l++) {
    const shape = spec.perLayer[l]!;
    const planted = plantedSlices(spec, l);
    const p = `${k}layers.${l}`;
    const s = `${b}/layers.${l}`;
    const a = `${s}/attn`;
    const width = shape.heads * D;
    const h = l === 0 ? x : layerNormNoBias(g, spec, `${s}/attn_norm`, x, `${p}.attn_norm`);
    const sizes = { batch: g.size(a, h, 0) };
    // Wqkv rows [q heads | k heads | v heads], drawn per part.
    const qkvWeight = packedWeight(g, spec, H, ['Wq', 'Wk', 'Wv'].map((name) => ({ key: `${p}.attn.${name}.weight`, width, zeroed: planted.queryHeads, unit: D })));
    const qkv = g.op1(`${a}/Wqkv`, 'MatMul', [h, qkvWeight]);
    const target = g.op1(a, 'Concat', [g.shapePiece(a, sizes.batch), g.constInt64(a, [-1]), g.constInt64(a, [3]), g.constInt64(a, [shape.heads]), g.constInt64(a, [D])], {
      attrs: [attr.int('axis', 0)],
    });
    const viewed = g.op1(a, 'Reshape', [qkv, target], { attrs: [attr.int('allowzero', 0)] });
    const transposed = g.op1(a, 'Transpose', [viewed], { attrs: [attr.ints('perm', [0, 3, 2, 1, 4])] });
    const parts = g.op(a, 'Split', [transposed, g.constInt64(a, [1, 1, 1])], { attrs: [attr.int('axis', 2)], outputs: 3 });
    const [q, kk, v] = parts.map((t) => g.op1(a, 'Squeeze', [t, g.constInt64(a, [2])])) as [string, string, string];
    const rope = modernbertGlobal(l) ? globalRope : localRope;
    const cos = g.unsqueeze(a, rope.cos, [1]);
    const sin = g.unsqueeze(a, rope.sin, [1]);
    const context = attentionCore(g, a, rotary(g, a, q, cos, sin), rotary(g, a, kk, cos, sin), v, mask, D, { scale: { op: 'Mul', value: 1 / Math.sqrt(D) } });
    const merged = g.op1(a, 'Transpose', [context], { attrs: [attr.ints('perm', [0, 2, 1, 3])] });
    const mergeTarget = g.op1(a, 'Concat', [g.shapePiece(a, sizes.batch), g.constInt64(a, [-1]), g.constInt64(a, [width])], { attrs: [attr.int('axis', 0)] });
    const attended = linear(g, spec, {
      scope: `${a}/Wo`, input: g.op1(a, 'Reshape', [merged, mergeTarget], { attrs: [attr.int('allowzero', 0)] }), inFeatures: width, outFeatures: H,
      weightKey: `${p}.attn.Wo.weight`, plantWeight: (w) => zeroRows(w, H, planted.queryHeads, D),
    });
    const x1 = g.op1(s, 'Add', [x, attended]);
    const m = layerNormNoBias(g, spec, `${s}/mlp_norm`, x1, `${p}.mlp_norm`);
    const wiWeight = packedWeight(g, spec, H, ['Wi_input', 'Wi_gate'].map((name) => ({ key: `${p}.mlp.${name}.weight`, width: shape.ffn, zeroed: planted.neurons, unit: 1 })));
    const [input, gate] = chunkTwo(g, `${s}/mlp`, g.op1(`${s}/mlp/Wi`, 'MatMul', [m, wiWeight]));
    const product = g.op1(`${s}/mlp`, 'Mul', [geluErf(g, `${s}/mlp/act`, input), gate]);
    const down = linear(g, spec, {
      scope: `${s}/mlp/Wo`, input: product, inFeatures: shape.ffn, outFeatures: H, weightKey: `${p}.mlp.Wo.weight`,
      plantWeight: (w) => zeroRows(w, H, planted.neurons, 1),
    });
    x = g.op1(s, 'Add', [x1, down]);
  }
  const normed = layerNormNoBias(g, spec, `${b}/final_norm`, x, `${k}final_norm`, mlm ? undefined : 'last_hidden_state');
  if (!mlm) return g.finish();
  const dense = linear(g, spec, { scope: '/head/dense', input: normed, inFeatures: H, outFeatures: H, weightKey: 'head.dense.weight' });
  const headNormed = layerNormNoBias(g, spec, '/head/norm', geluErf(g, '/head/act', dense), 'head.norm');
  const decoder = g.foldedInitializer('MatMul', { dataType: DataType.FLOAT, dims: [H, spec.vocab], values: () => transpose(drawTensor(spec, table, 'embedding', spec.vocab, H), spec.vocab, H) });
  const bias = g.initializer({ name: 'decoder.bias', dataType: DataType.FLOAT, dims: [spec.vocab], values: parameter(spec, 'decoder.bias', 'bias', spec.vocab) });
  g.op1('/decoder', 'Add', [bias, g.op1('/decoder', 'MatMul', [headNormed, decoder])], { outputs: ['logits'] });
  return g.finish();
}
