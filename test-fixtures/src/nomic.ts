/**
 * Nomic BERT (`NomicBertModel`, remote code; nomic-embed-text v1 / v1.5) as its modeling code
 * computes it and the transformers.js conversion exports it for feature-extraction
 * (/work/notes/families-encoders.md §2): word and token-type embeddings (no position table),
 * `emb_ln`; per layer (post-norm) `attn.Wqkv` `[hidden, 3 * hidden]` without bias, rearranged
 * `(three h d)` (a Reshape to `[b, s, 3, heads, head_dim]`), permuted and unbound, RoPE on q and
 * k from each layer's own `rotary_emb` (base 1000), eager attention divided by sqrt(head_dim),
 * `out_proj`, `norm1` of the residual sum, the gated MLP `fc11(h) * silu(fc12(h))` (the activated
 * branch is fc12), `fc2`, `norm2`. No linear has a bias (qkv_proj_bias, mlp_fc1_bias and
 * mlp_fc2_bias false). The remote code rotates q and k inside the packed tensor and stacks it
 * back; rotating them after the unbind computes the same values.
 */
import { DataType } from '@zerolm/onnx';
import { ropeTables, rotary } from './decoders';
import { attr, FLOAT32_MIN, GraphBuilder, type BuiltGraph } from './graph-builder';
import { attentionCore, layerNorm, linear, packedWeight, paddingMask } from './patterns';
import type { ResolvedSpec } from './spec';
import { drawTensor, plantedSlices, zeroColumns, zeroRows } from './weights';

export const NOMIC = { ropeBase: 1000, layerNormEps: 1e-12 } as const;

const TEXT_DIMS = ['batch_size', 'sequence_length'];

export function buildNomicBert(spec: ResolvedSpec): BuiltGraph {
  const g = new GraphBuilder();
  const inputIds = g.input('input_ids', DataType.INT64, TEXT_DIMS);
  const attentionMask = g.input('attention_mask', DataType.INT64, TEXT_DIMS);
  const tokenTypeIds = g.input('token_type_ids', DataType.INT64, TEXT_DIMS);
  g.output('last_hidden_state', DataType.FLOAT, [...TEXT_DIMS, spec.hidden]);
  const H = spec.hidden;
  const D = spec.headDim;
  const table = (name: string, rows: number) => g.initializer({ name, dataType: DataType.FLOAT, dims: [rows, H], values: () => drawTensor(spec, name, 'embedding', rows, H) });
  const words = g.op1('/embeddings/word_embeddings', 'Gather', [table('embeddings.word_embeddings.weight', spec.vocab), inputIds]);
  const types = g.op1('/embeddings/token_type_embeddings', 'Gather', [table('embeddings.token_type_embeddings.weight', 2), tokenTypeIds]);
  let x = layerNorm(g, spec, { scope: '/emb_ln', input: g.op1('/embeddings', 'Add', [words, types]), prefix: 'emb_ln', width: H, epsilon: NOMIC.layerNormEps });
  const mask = paddingMask(g, '', attentionMask, FLOAT32_MIN);
  for (let l = 0; l < spec.layers; l++) {
    const shape = spec.perLayer[l]!;
    const planted = plantedSlices(spec, l);
    const p = `encoder.layers.${l}`;
    const s = `/encoder/layers.${l}`;
    const a = `${s}/attn`;
    const width = shape.heads * D;
    const batch = g.size(a, x, 0);
    const sequence = g.size(a, x, 1);
    const qkvWeight = packedWeight(g, spec, H, ['Wq', 'Wk', 'Wv'].map((name) => ({ key: `${p}.attn.${name}.weight`, width, zeroed: planted.queryHeads, unit: D })));
    const qkv = g.op1(`${a}/Wqkv`, 'MatMul', [x, qkvWeight]);
    // einops "... (three h d) -> ... three h d": the target from the traced sizes and the constants.
    const target = g.op1(a, 'Concat', [g.shapePiece(a, batch), g.shapePiece(a, sequence), g.constInt64(a, [3]), g.constInt64(a, [shape.heads]), g.constInt64(a, [D])], {
      attrs: [attr.int('axis', 0)],
    });
    const viewed = g.op1(a, 'Reshape', [qkv, target], { attrs: [attr.int('allowzero', 0)] });
    // qkv.permute(0, 3, 2, 1, 4).unbind(dim=2): [b, heads, 3, s, d] -> q, k, v [b, heads, s, d].
    const permuted = g.op1(a, 'Transpose', [viewed], { attrs: [attr.ints('perm', [0, 3, 2, 1, 4])] });
    const parts = g.op(a, 'Split', [permuted, g.constInt64(a, [1, 1, 1])], { attrs: [attr.int('axis', 2)], outputs: 3 });
    const [q, k, v] = parts.map((t) => g.op1(a, 'Squeeze', [t, g.constInt64(a, [2])])) as [string, string, string];
    // Each layer's rotary_emb computes its own tables from arange(seq).
    const r = `${a}/rotary_emb`;
    const positions = g.op1(r, 'Cast', [g.unsqueeze(r, g.unsqueeze(r, g.op1(r, 'Range', [g.constInt64(r, [0], true), sequence, g.constInt64(r, [1], true)]), [0]), [2])], {
      attrs: [attr.int('to', DataType.FLOAT)],
    });
    const rope = ropeTables(g, spec, r, positions, NOMIC.ropeBase);
    const cos = g.unsqueeze(a, rope.cos, [1]);
    const sin = g.unsqueeze(a, rope.sin, [1]);
    const context = attentionCore(g, a, rotary(g, a, q, cos, sin), rotary(g, a, k, cos, sin), v, mask, D);
    const merged = g.op1(a, 'Transpose', [context], { attrs: [attr.ints('perm', [0, 2, 1, 3])] });
    const mergeTarget = g.op1(a, 'Concat', [g.shapePiece(a, batch), g.shapePiece(a, sequence), g.constInt64(a, [width])], { attrs: [attr.int('axis', 0)] });
    const attended = linear(g, spec, {
      scope: `${a}/out_proj`, input: g.op1(a, 'Reshape', [merged, mergeTarget], { attrs: [attr.int('allowzero', 0)] }), inFeatures: width, outFeatures: H,
      weightKey: `${p}.attn.out_proj.weight`, plantWeight: (w) => zeroRows(w, H, planted.queryHeads, D),
    });
    const h1 = layerNorm(g, spec, { scope: `${s}/norm1`, input: g.op1(s, 'Add', [attended, x]), prefix: `${p}.norm1`, width: H, epsilon: NOMIC.layerNormEps });
    const fc = (name: 'fc11' | 'fc12') =>
      linear(g, spec, {
        scope: `${s}/mlp/${name}`, input: h1, inFeatures: H, outFeatures: shape.ffn, weightKey: `${p}.mlp.${name}.weight`,
        plantWeight: (w) => zeroColumns(w, H, shape.ffn, planted.neurons, 1),
      });
    const y = fc('fc11');
    const gate = fc('fc12');
    const silu = g.op1(`${s}/mlp`, 'Mul', [gate, g.op1(`${s}/mlp`, 'Sigmoid', [gate])]);
    const down = linear(g, spec, {
      scope: `${s}/mlp/fc2`, input: g.op1(`${s}/mlp`, 'Mul', [y, silu]), inFeatures: shape.ffn, outFeatures: H, weightKey: `${p}.mlp.fc2.weight`,
      plantWeight: (w) => zeroRows(w, H, planted.neurons, 1),
    });
    x = layerNorm(g, spec, {
      scope: `${s}/norm2`, input: g.op1(s, 'Add', [down, h1]), prefix: `${p}.norm2`, width: H, epsilon: NOMIC.layerNormEps,
      ...(l === spec.layers - 1 ? { output: 'last_hidden_state' } : {}),
    });
  }
  return g.finish();
}
