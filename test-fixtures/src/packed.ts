/**
 * Decoders whose projections are packed, as their current Hugging Face modeling code computes
 * them and torch.onnx exports them (/work/notes/families-decoders.md §4-5):
 *
 * - Phi-3 (`Phi3ForCausalLM`): `qkv_proj` `[hidden, q | k | v]` cut by three Slices with constant
 *   bounds (`qkv[..., :q_pos]`, ...), heads viewed `(*input_shape, -1, head_dim)`, partial rotary
 *   (`partial_rotary_factor` 0.5: Slices on the head dim, RoPE on the first part, Concat), and
 *   `gate_up_proj` `[hidden, gate | up]` chunked in two by torch's ConstantChunk Slices (bounds from
 *   `Shape -> Gather(-1)` arithmetic), `down_proj(up * silu(gate))` under `mlp/activation_fn`;
 * - GPT-NeoX (`GPTNeoXForCausalLM`, Pythia): LayerNorm with biases; `query_key_value` with bias
 *   viewed `[b, s, -1, 3 * head_size]` per head, transposed and chunked in three on the last axis
 *   (q, k, v of each head side by side); partial rotary (`rotary_pct` 0.25); `dense` with bias;
 *   an erf-GELU MLP with biases reading the second LayerNorm of the layer input; the parallel
 *   residual `Add(mlp, attention)` then `Add(., x)`; untied `embed_out`.
 */
import { DataType } from '@zerolm/onnx';
import { appendCache, causalMask, declareIo, decoderConstants, embedding, lmHead, repeatKv, ropeTables, rotary } from './decoders';
import { attr, GraphBuilder, INT64_MAX, type BuiltGraph } from './graph-builder';
import { attentionCore, geluErf, layerNorm, linear, packedWeight, rmsNorm } from './patterns';
import type { ResolvedSpec } from './spec';
import { drawTensor, plantedSlices, transpose, zeroColumns, zeroEntries, zeroRows } from './weights';

/** Phi-3's partial_rotary_factor and GPT-NeoX's rotary_pct in the fixtures. */
export const PHI3_PARTIAL_ROTARY = 0.5;
export const NEOX_ROTARY_PCT = 0.25;

/** `x[..., a:b]` on the last axis of a rank-`rank` tensor, with constant bounds (INT64_MAX for the end). */
function sliceLast(g: GraphBuilder, scope: string, x: string, start: number, end: number | bigint, rank: number): string {
  return g.op1(scope, 'Slice', [x, g.constInt64(scope, [start]), g.constInt64(scope, [end]), g.constInt64(scope, [rank - 1]), g.constInt64(scope, [1])]);
}

/** `x.chunk(chunks, dim=-1)` as torch.onnx writes it at opset 13+: Slices whose bounds come from the traced size. */
function chunkLast(g: GraphBuilder, scope: string, x: string, chunks: number): string[] {
  const size = g.op1(scope, 'Gather', [g.op1(scope, 'Shape', [x]), g.constInt64(scope, [-1])], { attrs: [attr.int('axis', 0)] });
  const chunk = g.op1(scope, 'Div', [g.op1(scope, 'Add', [size, g.constInt64(scope, [chunks - 1])]), g.constInt64(scope, [chunks])]);
  const parts: string[] = [];
  for (let i = 0; i < chunks; i++) {
    const start = i === 0 ? g.constInt64(scope, [0]) : g.op1(scope, 'Mul', [chunk, g.constInt64(scope, [i])]);
    const end = g.op1(scope, 'Mul', [chunk, g.constInt64(scope, [i + 1])]);
    parts.push(g.op1(scope, 'Slice', [x, start, end, g.constInt64(scope, [-1]), g.constInt64(scope, [1])]));
  }
  return parts;
}

/** `x.view(*input_shape, -1, width)`: the current modeling code's head split, a -1 for the head count. */
function viewHeads(g: GraphBuilder, scope: string, x: string, sizes: { batch: string; sequence: string }, width: number): string {
  const target = g.op1(scope, 'Concat', [g.shapePiece(scope, sizes.batch), g.shapePiece(scope, sizes.sequence), g.constInt64(scope, [-1]), g.constInt64(scope, [width])], {
    attrs: [attr.int('axis', 0)],
  });
  return g.op1(scope, 'Reshape', [x, target], { attrs: [attr.int('allowzero', 0)] });
}

/** `attn_output.transpose(1, 2).reshape(*input_shape, -1)`. */
function mergeCurrent(g: GraphBuilder, scope: string, context: string, sizes: { batch: string; sequence: string }): string {
  const transposed = g.op1(scope, 'Transpose', [context], { attrs: [attr.ints('perm', [0, 2, 1, 3])] });
  const target = g.op1(scope, 'Concat', [g.shapePiece(scope, sizes.batch), g.shapePiece(scope, sizes.sequence), g.constInt64(scope, [-1])], { attrs: [attr.int('axis', 0)] });
  return g.op1(scope, 'Reshape', [transposed, target], { attrs: [attr.int('allowzero', 0)] });
}

/** Partial rotary: RoPE on the first `rot` features of each head, the rest passed through, Concat. */
function partialRotary(g: GraphBuilder, scope: string, x: string, rot: number, cos: string, sin: string): string {
  const rotated = rotary(g, scope, sliceLast(g, scope, x, 0, rot, 4), cos, sin);
  const passed = sliceLast(g, scope, x, rot, INT64_MAX, 4);
  return g.op1(scope, 'Concat', [rotated, passed], { attrs: [attr.int('axis', -1)] });
}

export function buildPhi3(spec: ResolvedSpec): BuiltGraph {
  const g = new GraphBuilder();
  const io = declareIo(g, spec);
  const m = '/model';
  const { normEpsilon, ropeTheta } = decoderConstants('phi3');
  const D = spec.headDim;
  const rot = D * PHI3_PARTIAL_ROTARY;
  const embedded = g.op1(`${m}/embed_tokens`, 'Gather', [embedding(g, spec, 'model.embed_tokens.weight', spec.vocab), io.inputIds]);
  const sequence = g.size(m, io.inputIds, 1);
  const total = g.size(m, io.attentionMask, 1);
  const r = `${m}/rotary_emb`;
  const positions = g.op1(r, 'Cast', [g.unsqueeze(r, io.positionIds!, [2])], { attrs: [attr.int('to', DataType.FLOAT)] });
  const rope = ropeTables(g, spec, r, positions, ropeTheta, rot);
  const mask = causalMask(g, m, sequence, total, io.attentionMask);
  let x = embedded;
  for (let l = 0; l < spec.layers; l++) {
    const shape = spec.perLayer[l]!;
    const planted = plantedSlices(spec, l);
    const p = `model.layers.${l}`;
    const s = `/model/layers.${l}`;
    const a = `${s}/self_attn`;
    const qWidth = shape.heads * D;
    const kvWidth = shape.kvHeads * D;
    const h = rmsNorm(g, spec, { scope: `${s}/input_layernorm`, input: x, prefix: `${p}.input_layernorm`, width: spec.hidden, epsilon: normEpsilon });
    const sizes = { batch: g.size(a, h, 0), sequence: g.size(a, h, 1) };
    // Drawn as q, k and v so that the truth has them apart; the file holds qkv_proj.
    const qkvWeight = packedWeight(g, spec, spec.hidden, [
      { key: `${p}.self_attn.q_proj.weight`, width: qWidth, zeroed: planted.queryHeads, unit: D },
      { key: `${p}.self_attn.k_proj.weight`, width: kvWidth, zeroed: planted.kvHeads, unit: D },
      { key: `${p}.self_attn.v_proj.weight`, width: kvWidth, zeroed: planted.kvHeads, unit: D },
    ]);
    const qkv = g.op1(`${a}/qkv_proj`, 'MatMul', [h, qkvWeight]);
    const q = g.op1(a, 'Transpose', [viewHeads(g, a, sliceLast(g, a, qkv, 0, qWidth, 3), sizes, D)], { attrs: [attr.ints('perm', [0, 2, 1, 3])] });
    const k = g.op1(a, 'Transpose', [viewHeads(g, a, sliceLast(g, a, qkv, qWidth, qWidth + kvWidth, 3), sizes, D)], { attrs: [attr.ints('perm', [0, 2, 1, 3])] });
    const v = g.op1(a, 'Transpose', [viewHeads(g, a, sliceLast(g, a, qkv, qWidth + kvWidth, INT64_MAX, 3), sizes, D)], { attrs: [attr.ints('perm', [0, 2, 1, 3])] });
    const cos = g.unsqueeze(a, rope.cos, [1]);
    const sin = g.unsqueeze(a, rope.sin, [1]);
    const presentKey = appendCache(g, a, l, 'key', partialRotary(g, a, k, rot, cos, sin));
    const presentValue = appendCache(g, a, l, 'value', v);
    const qRotated = partialRotary(g, a, q, rot, cos, sin);
    let keys = presentKey;
    let values = presentValue;
    const repeats = shape.heads / shape.kvHeads;
    if (repeats > 1) {
      const cacheSizes = { batch: sizes.batch, total: g.size(a, presentKey, 2) };
      keys = repeatKv(g, a, presentKey, cacheSizes, shape.kvHeads, repeats, D);
      values = repeatKv(g, a, presentValue, cacheSizes, shape.kvHeads, repeats, D);
    }
    const context = attentionCore(g, a, qRotated, keys, values, mask, D, { scale: { op: 'Mul', value: 1 / Math.sqrt(D) } });
    const attended = linear(g, spec, {
      scope: `${a}/o_proj`, input: mergeCurrent(g, a, context, sizes), inFeatures: qWidth, outFeatures: spec.hidden, weightKey: `${p}.self_attn.o_proj.weight`,
      plantWeight: (w) => zeroRows(w, spec.hidden, planted.queryHeads, D),
    });
    const x1 = g.op1(s, 'Add', [x, attended]);
    const h2 = rmsNorm(g, spec, { scope: `${s}/post_attention_layernorm`, input: x1, prefix: `${p}.post_attention_layernorm`, width: spec.hidden, epsilon: normEpsilon });
    const gateUpWeight = packedWeight(g, spec, spec.hidden, ['gate_proj', 'up_proj'].map((name) => ({ key: `${p}.mlp.${name}.weight`, width: shape.ffn, zeroed: planted.neurons, unit: 1 })));
    const gateUp = g.op1(`${s}/mlp/gate_up_proj`, 'MatMul', [h2, gateUpWeight]);
    const [gate, up] = chunkLast(g, `${s}/mlp`, gateUp, 2) as [string, string];
    const act = `${s}/mlp/activation_fn`;
    const activated = g.op1(act, 'Mul', [gate, g.op1(act, 'Sigmoid', [gate])]);
    const product = g.op1(`${s}/mlp`, 'Mul', [up, activated]);
    const down = linear(g, spec, {
      scope: `${s}/mlp/down_proj`, input: product, inFeatures: shape.ffn, outFeatures: spec.hidden, weightKey: `${p}.mlp.down_proj.weight`,
      plantWeight: (w) => zeroRows(w, spec.hidden, planted.neurons, 1),
    });
    x = g.op1(s, 'Add', [x1, down]);
  }
  const normed = rmsNorm(g, spec, { scope: `${m}/norm`, input: x, prefix: 'model.norm', width: spec.hidden, epsilon: normEpsilon });
  lmHead(g, spec, normed, 'model.embed_tokens.weight');
  return g.finish();
}

export function buildGptNeox(spec: ResolvedSpec): BuiltGraph {
  const g = new GraphBuilder();
  const io = declareIo(g, spec);
  const t = '/gpt_neox';
  const { normEpsilon, ropeTheta } = decoderConstants('gpt_neox');
  const D = spec.headDim;
  const rot = D * NEOX_ROTARY_PCT;
  const embedded = g.op1(`${t}/embed_in`, 'Gather', [embedding(g, spec, 'gpt_neox.embed_in.weight', spec.vocab), io.inputIds]);
  const sequence = g.size(t, io.inputIds, 1);
  const total = g.size(t, io.attentionMask, 1);
  const r = `${t}/rotary_emb`;
  const positions = g.op1(r, 'Cast', [g.unsqueeze(r, io.positionIds!, [2])], { attrs: [attr.int('to', DataType.FLOAT)] });
  const rope = ropeTables(g, spec, r, positions, ropeTheta, rot);
  const mask = causalMask(g, t, sequence, total, io.attentionMask);
  let x = embedded;
  for (let l = 0; l < spec.layers; l++) {
    const shape = spec.perLayer[l]!;
    const planted = plantedSlices(spec, l);
    const p = `gpt_neox.layers.${l}`;
    const s = `/gpt_neox/layers.${l}`;
    const a = `${s}/attention`;
    const width = shape.heads * D;
    const h = layerNorm(g, spec, { scope: `${s}/input_layernorm`, input: x, prefix: `${p}.input_layernorm`, width: spec.hidden, epsilon: normEpsilon });
    // query_key_value: rows of head h are [q_h | k_h | v_h] (3 * head_size each).
    const interleave = (values: readonly Float32Array[], rows: number) => {
      const out = new Float32Array(rows * 3 * width);
      for (let row = 0; row < rows; row++) {
        for (let head = 0; head < shape.heads; head++) {
          for (let part = 0; part < 3; part++) {
            out.set(values[part]!.subarray(row * width + head * D, row * width + (head + 1) * D), row * 3 * width + head * 3 * D + part * D);
          }
        }
      }
      return out;
    };
    const parts = (suffix: 'weight' | 'bias', rows: number) =>
      (['query', 'key', 'value'] as const).map((name) => {
        const key = `${p}.attention.${name}.${suffix}`;
        const v = drawTensor(spec, key, suffix === 'weight' ? 'matrix' : 'bias', rows, width);
        if (suffix === 'weight') zeroColumns(v, rows, width, planted.queryHeads, D);
        else zeroEntries(v, planted.queryHeads, D);
        return v;
      });
    const qkvWeight = g.foldedInitializer('MatMul', { dataType: DataType.FLOAT, dims: [spec.hidden, 3 * width], values: () => interleave(parts('weight', spec.hidden), spec.hidden) });
    const qkvBias = g.initializer({ name: `${p}.attention.query_key_value.bias`, dataType: DataType.FLOAT, dims: [3 * width], values: () => interleave(parts('bias', 1), 1) });
    const qkv = g.op1(`${a}/query_key_value`, 'Add', [qkvBias, g.op1(`${a}/query_key_value`, 'MatMul', [h, qkvWeight])]);
    const sizes = { batch: g.size(a, h, 0), sequence: g.size(a, h, 1) };
    const heads = g.op1(a, 'Transpose', [viewHeads(g, a, qkv, sizes, 3 * D)], { attrs: [attr.ints('perm', [0, 2, 1, 3])] });
    const [q, k, v] = chunkLast(g, a, heads, 3) as [string, string, string];
    const cos = g.unsqueeze(a, rope.cos, [1]);
    const sin = g.unsqueeze(a, rope.sin, [1]);
    const qRotated = partialRotary(g, a, q, rot, cos, sin);
    const presentKey = appendCache(g, a, l, 'key', partialRotary(g, a, k, rot, cos, sin));
    const presentValue = appendCache(g, a, l, 'value', v);
    const context = attentionCore(g, a, qRotated, presentKey, presentValue, mask, D, { scale: { op: 'Mul', value: 1 / Math.sqrt(D) } });
    const attended = linear(g, spec, {
      scope: `${a}/dense`, input: mergeCurrent(g, a, context, sizes), inFeatures: width, outFeatures: spec.hidden,
      weightKey: `${p}.attention.dense.weight`, bias: `${p}.attention.dense.bias`,
      plantWeight: (w) => zeroRows(w, spec.hidden, planted.queryHeads, D),
    });
    // Parallel residual: the MLP reads the second LayerNorm of the layer input.
    const h2 = layerNorm(g, spec, { scope: `${s}/post_attention_layernorm`, input: x, prefix: `${p}.post_attention_layernorm`, width: spec.hidden, epsilon: normEpsilon });
    const up = linear(g, spec, {
      scope: `${s}/mlp/dense_h_to_4h`, input: h2, inFeatures: spec.hidden, outFeatures: shape.ffn,
      weightKey: `${p}.mlp.dense_h_to_4h.weight`, bias: `${p}.mlp.dense_h_to_4h.bias`,
      plantWeight: (w) => zeroColumns(w, spec.hidden, shape.ffn, planted.neurons, 1),
      plantBias: (b) => zeroEntries(b, planted.neurons, 1),
    });
    const down = linear(g, spec, {
      scope: `${s}/mlp/dense_4h_to_h`, input: geluErf(g, `${s}/mlp/act`, up), inFeatures: shape.ffn, outFeatures: spec.hidden,
      weightKey: `${p}.mlp.dense_4h_to_h.weight`, bias: `${p}.mlp.dense_4h_to_h.bias`,
      plantWeight: (w) => zeroRows(w, spec.hidden, planted.neurons, 1),
    });
    x = g.op1(s, 'Add', [g.op1(s, 'Add', [down, attended]), x]);
  }
  const normed = layerNorm(g, spec, { scope: `${t}/final_layer_norm`, input: x, prefix: 'gpt_neox.final_layer_norm', width: spec.hidden, epsilon: normEpsilon });
  const head = g.foldedInitializer('MatMul', {
    dataType: DataType.FLOAT,
    dims: [spec.hidden, spec.vocab],
    values: () => transpose(drawTensor(spec, 'embed_out.weight', 'matrix', spec.vocab, spec.hidden), spec.vocab, spec.hidden),
  });
  g.op1('/embed_out', 'MatMul', [normed, head], { outputs: ['logits'] });
  return g.finish();
}
