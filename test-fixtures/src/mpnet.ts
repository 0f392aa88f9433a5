/**
 * MPNet (`MPNetModel`, sentence-transformers' all-mpnet-base-v2) as its Hugging Face modeling code
 * computes it and optimum exports it for feature-extraction (/work/notes/families-encoders.md §3):
 * positions from the ids with the padding index 1 the code hard-codes (RoBERTa's scheme, no token
 * types); the relative position bias computed once in `/encoder` (T5-style buckets: 32, max
 * distance 128) by gathering `encoder.relative_attention_bias.weight` `[buckets, heads]`,
 * permuted to `[1, heads, S, S]` and expanded, then added to every layer's scores (after the
 * division by sqrt(head_dim), before the mask); post-norm BERT layers named
 * `attention.attn.{q,k,v,o}`, `attention.LayerNorm`, `intermediate.dense`, `output.dense`,
 * `output.LayerNorm`, biases everywhere. Eager only (MPNet has no SDPA class).
 */
import { DataType } from '@zerolm/onnx';
import { attr, FLOAT32_MIN, GraphBuilder, type BuiltGraph } from './graph-builder';
import { robertaPositionIds } from './encoders';
import { geluErf, layerNorm, linear, mergeHeads, paddingMask, splitHeads } from './patterns';
import type { ResolvedSpec } from './spec';
import { drawTensor, plantedSlices, zeroColumns, zeroEntries, zeroRows } from './weights';

export const MPNET = { paddingIdx: 1, buckets: 32, maxDistance: 128, layerNormEps: 1e-5 } as const;

const TEXT_DIMS = ['batch_size', 'sequence_length'];

/** `relative_position_bucket(memory - context)` over `[S, S]`, then the table gather, permute and unsqueeze: `[1, heads, S, S]`. */
function positionBias(g: GraphBuilder, spec: ResolvedSpec, sequence: string): string {
  const s = '/encoder';
  const range = g.op1(s, 'Range', [g.constInt64(s, [0], true), sequence, g.constInt64(s, [1], true)]);
  const relative = g.op1(s, 'Sub', [g.unsqueeze(s, range, [0]), g.unsqueeze(s, range, [1])]); // j - i
  const n = g.op1(s, 'Neg', [relative]);
  const half = MPNET.buckets / 2;
  const maxExact = half / 2;
  const sign = g.op1(s, 'Mul', [g.op1(s, 'Cast', [g.op1(s, 'Less', [n, g.constInt64(s, [0], true)])], { attrs: [attr.int('to', DataType.INT64)] }), g.constInt64(s, [half], true)]);
  const distance = g.op1(s, 'Abs', [n]);
  const small = g.op1(s, 'Less', [distance, g.constInt64(s, [maxExact], true)]);
  const logRatio = g.op1(s, 'Div', [g.op1(s, 'Log', [g.op1(s, 'Div', [g.op1(s, 'Cast', [distance], { attrs: [attr.int('to', DataType.FLOAT)] }), g.constFloat(s, maxExact)])]), g.constFloat(s, Math.log(MPNET.maxDistance / maxExact))]);
  const large = g.op1(s, 'Add', [g.constInt64(s, [maxExact], true), g.op1(s, 'Cast', [g.op1(s, 'Mul', [logRatio, g.constFloat(s, half - maxExact)])], { attrs: [attr.int('to', DataType.INT64)] })]);
  const capped = g.op1(s, 'Min', [large, g.constInt64(s, [half - 1], true)]);
  const bucket = g.op1(s, 'Add', [sign, g.op1(s, 'Where', [small, distance, capped])]);
  const name = 'encoder.relative_attention_bias.weight';
  const table = g.initializer({ name, dataType: DataType.FLOAT, dims: [MPNET.buckets, spec.heads], values: () => drawTensor(spec, name, 'bias', MPNET.buckets, spec.heads) });
  const values = g.op1(`${s}/relative_attention_bias`, 'Gather', [table, bucket]);
  const permuted = g.op1(s, 'Transpose', [values], { attrs: [attr.ints('perm', [2, 0, 1])] });
  return g.unsqueeze(s, permuted, [0]);
}

export function buildMpnet(spec: ResolvedSpec): BuiltGraph {
  const g = new GraphBuilder();
  const inputIds = g.input('input_ids', DataType.INT64, TEXT_DIMS);
  const attentionMask = g.input('attention_mask', DataType.INT64, TEXT_DIMS);
  g.output('last_hidden_state', DataType.FLOAT, [...TEXT_DIMS, spec.hidden]);
  const H = spec.hidden;
  const D = spec.headDim;
  const e = '/embeddings';
  const table = (name: string, rows: number) => g.initializer({ name, dataType: DataType.FLOAT, dims: [rows, H], values: () => drawTensor(spec, name, 'embedding', rows, H) });
  const positions = robertaPositionIds(g, e, inputIds, MPNET.paddingIdx);
  const words = g.op1(`${e}/word_embeddings`, 'Gather', [table('embeddings.word_embeddings.weight', spec.vocab), inputIds]);
  const placed = g.op1(`${e}/position_embeddings`, 'Gather', [table('embeddings.position_embeddings.weight', spec.maxPositions + MPNET.paddingIdx + 1), positions]);
  let x = layerNorm(g, spec, { scope: `${e}/LayerNorm`, input: g.op1(e, 'Add', [words, placed]), prefix: 'embeddings.LayerNorm', width: H, epsilon: MPNET.layerNormEps });
  const mask = paddingMask(g, '', attentionMask, FLOAT32_MIN);
  const bias = positionBias(g, spec, g.size('/encoder', inputIds, 1));
  for (let l = 0; l < spec.layers; l++) {
    const shape = spec.perLayer[l]!;
    const planted = plantedSlices(spec, l);
    const p = `encoder.layer.${l}`;
    const s = `/encoder/layer.${l}`;
    const a = `${s}/attention/attn`;
    const width = shape.heads * D;
    const projection = (name: 'q' | 'k' | 'v') =>
      linear(g, spec, {
        scope: `${a}/${name}`, input: x, inFeatures: H, outFeatures: width, weightKey: `${p}.attention.attn.${name}.weight`, bias: `${p}.attention.attn.${name}.bias`,
        plantWeight: (w) => zeroColumns(w, H, width, planted.queryHeads, D), plantBias: (b) => zeroEntries(b, planted.queryHeads, D),
      });
    const split = (t: string) => splitHeads(g, a, t, { batch: g.size(a, t, 0), sequence: g.size(a, t, 1) }, shape.heads, D);
    const q = split(projection('q'));
    const k = split(projection('k'));
    const v = split(projection('v'));
    const scores = g.op1(a, 'MatMul', [q, g.op1(a, 'Transpose', [k], { attrs: [attr.ints('perm', [0, 1, 3, 2])] })]);
    const scaled = g.op1(a, 'Div', [scores, g.constFloat(a, Math.sqrt(D))]);
    const biased = g.op1(a, 'Add', [scaled, bias]);
    const probs = g.op1(a, 'Softmax', [g.op1(a, 'Add', [biased, mask])], { attrs: [attr.int('axis', -1)] });
    const context = mergeHeads(g, a, g.op1(a, 'MatMul', [probs, v]), width);
    const attended = linear(g, spec, {
      scope: `${a}/o`, input: context, inFeatures: width, outFeatures: H, weightKey: `${p}.attention.attn.o.weight`, bias: `${p}.attention.attn.o.bias`,
      plantWeight: (w) => zeroRows(w, H, planted.queryHeads, D),
    });
    const attentionOut = layerNorm(g, spec, { scope: `${s}/attention/LayerNorm`, input: g.op1(`${s}/attention`, 'Add', [attended, x]), prefix: `${p}.attention.LayerNorm`, width: H, epsilon: MPNET.layerNormEps });
    const up = linear(g, spec, {
      scope: `${s}/intermediate/dense`, input: attentionOut, inFeatures: H, outFeatures: shape.ffn, weightKey: `${p}.intermediate.dense.weight`, bias: `${p}.intermediate.dense.bias`,
      plantWeight: (w) => zeroColumns(w, H, shape.ffn, planted.neurons, 1), plantBias: (b) => zeroEntries(b, planted.neurons, 1),
    });
    const down = linear(g, spec, {
      scope: `${s}/output/dense`, input: geluErf(g, `${s}/intermediate/intermediate_act_fn`, up), inFeatures: shape.ffn, outFeatures: H,
      weightKey: `${p}.output.dense.weight`, bias: `${p}.output.dense.bias`, plantWeight: (w) => zeroRows(w, H, planted.neurons, 1),
    });
    x = layerNorm(g, spec, {
      scope: `${s}/output/LayerNorm`, input: g.op1(`${s}/output`, 'Add', [down, attentionOut]), prefix: `${p}.output.LayerNorm`, width: H, epsilon: MPNET.layerNormEps,
      ...(l === spec.layers - 1 ? { output: 'last_hidden_state' } : {}),
    });
  }
  return g.finish();
}
