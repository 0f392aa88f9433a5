/**
 * LLaMA-family decoders written the way onnxruntime-genai's model builder writes them
 * (`src/python/py/models/builders/base.py`, CPU fp32 and int4; /work/notes/graph-styles.md §A):
 *
 * - inputs `input_ids`, `attention_mask` (no `position_ids`: RoPE is computed inside
 *   GroupQueryAttention), every layer's `past_key_values.<i>.key`, then every `.value`; outputs
 *   `logits`, every `present.<i>.key`, then every `.value`;
 * - `seqlens_k = ReduceSum(attention_mask) - 1` and `total_sequence_length = shape(mask)[1]`,
 *   both int32, computed once under `/model/attn_mask_reformat/attn_mask_subgraph`;
 * - per layer: `SimplifiedLayerNormalization` (layer 0) or `SkipSimplifiedLayerNormalization`
 *   (residual input 0, sublayer output input 1, sum in output 3), one packed `qkv_proj` MatMul
 *   (`[hidden, q | k | v]`, plus `qkv_proj/Add` with the packed bias for Qwen2), a
 *   `GroupQueryAttention` with inputs 1-2 empty, `do_rotary=1` and the `cos_cache` / `sin_cache`
 *   tables `[context, head_dim / 2]`, `o_proj`, SwiGLU as `Sigmoid`, `Mul`, `Mul`;
 * - the final norm is a SkipSimplifiedLayerNormalization at layer index L with one output, then
 *   `/lm_head/MatMul` -> `logits`; weights named `model.layers.<i>.attn.qkv_proj.MatMul.weight`,
 *   stored `[in, out]`; constants `/model/constants/INT64/[1]` from `Constant` nodes;
 * - int4 (`quantization: 'int4'`): every MatMul (the LM head too) becomes `MatMulNBits` named
 *   `<MatMul>_Q4`, 4 bits, blocks of 32 along K, symmetric (no zero points: 8), weights
 *   `<weight>_Q4` uint8 `[N, K / 32, 16]`, scales `<weight>_scales` float `[N * K / 32]`, as
 *   onnxruntime's MatMulNBitsQuantizer writes them; the output keeps the MatMul's name.
 *
 * - `rotary: 'operator'` (the builder's path when RoPE is not fused, e.g. for DirectML): separate
 *   `q_proj` / `k_proj` / `v_proj` MatMuls, `RotaryEmbedding` nodes on q and k reading a
 *   `position_ids` input (`num_heads` written, as for partial rotary), and GroupQueryAttention with
 *   three inputs and `do_rotary=0`.
 *
 * Weights are drawn under the Hugging Face state-dict names, so the same spec written in
 * torch.onnx style computes the same logits.
 */
import { DataType, makeValueInfo, type NodeProto, type ValueInfoProto } from '@zerolm/onnx';
import { decoderConstants } from './decoders';
import { attr, constantTensor, makeNode, type BuiltGraph, type LazyInitializer } from './graph-builder';
import type { ResolvedSpec } from './spec';
import { drawTensor, plantedSlices, zeroColumns, zeroEntries, zeroRows } from './weights';

/** Block size of the builder's default int4 quantization. */
export const INT4_BLOCK = 32;

class BuilderGraph {
  readonly nodes: NodeProto[] = [];
  readonly initializers: LazyInitializer[] = [];
  private readonly constants = new Set<string>();

  node(opType: string, name: string, inputs: readonly string[], outputs: readonly string[], attributes = [] as ReturnType<typeof attr.int>[], domain?: string): string {
    const node = makeNode(opType, name, inputs, outputs, attributes);
    if (domain) node.domain = domain;
    this.nodes.push(node);
    return outputs[0]!;
  }

  /** `/model/constants/INT64/<value>` from a `Constant` node, once: `[1]` a 1-D tensor, `1` a scalar. */
  int64(values: readonly number[], scalar: boolean): string {
    const label = scalar ? String(values[0]) : `[${values.join(', ')}]`;
    const output = `/model/constants/INT64/${label}`;
    if (!this.constants.has(output)) {
      this.constants.add(output);
      const value = constantTensor(DataType.INT64, scalar ? [] : [values.length], values.map((v) => BigInt(v)));
      this.nodes.unshift(makeNode('Constant', `/model/constant_nodes/INT64/${label}`, [], [output], [attr.tensor('value', value)]));
    }
    return output;
  }

  weight(name: string, dims: number[], values: () => Float32Array): string {
    this.initializers.push({ name, dataType: DataType.FLOAT, dims, values });
    return name;
  }
}

/** 4-bit symmetric block quantization of `w` ([K, N], stored `[in, out]`) as MatMulNBits stores B = w^T. */
export function quantizeInt4Blocks(w: Float32Array, k: number, n: number): { codes: Uint8Array; scales: Float32Array } {
  const blocks = Math.ceil(k / INT4_BLOCK);
  const blob = INT4_BLOCK / 2;
  const codes = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  for (let col = 0; col < n; col++) {
    for (let b = 0; b < blocks; b++) {
      let amax = 0;
      const end = Math.min(k, (b + 1) * INT4_BLOCK);
      for (let r = b * INT4_BLOCK; r < end; r++) amax = Math.max(amax, Math.abs(w[r * n + col]!));
      const scale = amax / 7;
      scales[col * blocks + b] = scale;
      for (let r = b * INT4_BLOCK; r < b * INT4_BLOCK + INT4_BLOCK; r++) {
        const value = r < k && scale > 0 ? w[r * n + col]! / scale : 0;
        const code = Math.min(15, Math.max(0, Math.round(value) + 8));
        const i = r - b * INT4_BLOCK;
        const at = (col * blocks + b) * blob + (i >> 1);
        codes[at] = codes[at]! | (i % 2 === 0 ? code : code << 4);
      }
    }
  }
  return { codes, scales };
}

export function buildGenaiDecoder(spec: ResolvedSpec): BuiltGraph {
  const g = new BuilderGraph();
  const H = spec.headDim;
  const L = spec.layers;
  const int4 = spec.quantization === 'int4';
  const { normEpsilon, ropeTheta } = decoderConstants(spec.family);
  const inputs: ValueInfoProto[] = [
    makeValueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']),
    makeValueInfo('attention_mask', DataType.INT64, ['batch_size', 'total_sequence_length']),
    // Without RoPE inside GroupQueryAttention, the RotaryEmbedding nodes read the positions.
    ...(spec.rotary === 'operator' ? [makeValueInfo('position_ids', DataType.INT64, ['batch_size', 'sequence_length'])] : []),
  ];
  const outputs: ValueInfoProto[] = [makeValueInfo('logits', DataType.FLOAT, ['batch_size', 'sequence_length', spec.vocab])];
  for (const kind of ['key', 'value']) {
    spec.perLayer.forEach((shape, l) => {
      inputs.push(makeValueInfo(`past_key_values.${l}.${kind}`, DataType.FLOAT, ['batch_size', shape.kvHeads, 'past_sequence_length', H]));
      outputs.push(makeValueInfo(`present.${l}.${kind}`, DataType.FLOAT, ['batch_size', shape.kvHeads, 'total_sequence_length', H]));
    });
  }

  const matmul = (name: string, input: string, weightName: string, k: number, n: number, values: () => Float32Array, output = `${name}/output_0`): string => {
    if (!int4) return g.node('MatMul', name, [input, g.weight(weightName, [k, n], values)], [output]);
    const blocks = Math.ceil(k / INT4_BLOCK);
    let cached: ReturnType<typeof quantizeInt4Blocks> | undefined;
    const quantized = () => (cached ??= quantizeInt4Blocks(values(), k, n));
    g.initializers.push(
      { name: `${weightName}_Q4`, dataType: DataType.UINT8, dims: [n, blocks, INT4_BLOCK / 2], values: () => quantized().codes },
      { name: `${weightName}_scales`, dataType: DataType.FLOAT, dims: [n * blocks], values: () => quantized().scales },
    );
    return g.node(
      'MatMulNBits',
      `${name}_Q4`,
      [input, `${weightName}_Q4`, `${weightName}_scales`],
      [output],
      [attr.int('K', k), attr.int('N', n), attr.int('bits', 4), attr.int('block_size', INT4_BLOCK), attr.int('accuracy_level', 4)],
      'com.microsoft',
    );
  };

  // seqlens_k and total_sequence_length from the attention mask.
  const m = '/model/attn_mask_reformat/attn_mask_subgraph';
  const one = g.int64([1], false);
  const summed = g.node('ReduceSum', `${m}/ReduceSum`, ['attention_mask', one], [`${m}/ReduceSum/output_0`], [attr.int('keepdims', 0)]);
  const less = g.node('Sub', `${m}/Sub`, [summed, one], [`${m}/Sub/output_0`]);
  const seqlensK = g.node('Cast', `${m}/Sub/Cast`, [less], [`${m}/Sub/Cast/output_0`], [attr.int('to', DataType.INT32)]);
  const shape = g.node('Shape', `${m}/Shape`, ['attention_mask'], [`${m}/Shape/output_0`]);
  const total = g.node('Gather', `${m}/Gather`, [shape, g.int64([1], true)], [`${m}/Gather/output_0`], [attr.int('axis', 0)]);
  const totalLength = g.node('Cast', `${m}/Gather/Cast`, [total], [`${m}/Gather/Cast/output_0`], [attr.int('to', DataType.INT32)]);

  const embedding = g.weight('model.embed_tokens.weight', [spec.vocab, spec.hidden], () => drawTensor(spec, 'model.embed_tokens.weight', 'embedding', spec.vocab, spec.hidden));
  const embedded = g.node('Gather', '/model/embed_tokens/Gather', [embedding, 'input_ids'], ['/model/embed_tokens/Gather/output_0']);

  // RoPE tables: cos/sin of position * inv_freq, the first half of cat(freqs, freqs).
  const half = H / 2;
  const table = (f: (x: number) => number) => () => {
    const out = new Float32Array(spec.maxPositions * half);
    for (let p = 0; p < spec.maxPositions; p++) for (let i = 0; i < half; i++) out[p * half + i] = f(p / Math.pow(ropeTheta, (2 * i) / H));
    return out;
  };
  g.weight('cos_cache', [spec.maxPositions, half], table(Math.cos));
  g.weight('sin_cache', [spec.maxPositions, half], table(Math.sin));

  const norm = (location: string, l: number, residual: string | undefined, sublayer: string | undefined, last = false): { normed: string; sum?: string } => {
    const scope = `/model/layers.${l}/${location}_layernorm`;
    const weight = g.weight(`model.layers.${l}.${location}_layernorm.weight`, [spec.hidden], () => {
      const key = location === 'final_norm' ? 'model.norm.weight' : `model.layers.${l}.${location}_layernorm.weight`;
      return drawTensor(spec, key, 'norm-weight', spec.hidden);
    });
    if (!residual || !sublayer) {
      g.node('SimplifiedLayerNormalization', `${scope}/LayerNorm`, [sublayer ?? residual!, weight], [`${scope}/output_0`], [
        attr.float('epsilon', normEpsilon), attr.int('axis', -1), attr.int('stash_type', 1),
      ]);
      return { normed: `${scope}/output_0` };
    }
    const outs = last ? [`${scope}/output_0`] : [`${scope}/output_0`, '', '', `${scope}/output_3`];
    g.node('SkipSimplifiedLayerNormalization', `${scope}/SkipLayerNorm`, [residual, sublayer, weight], outs, [attr.float('epsilon', normEpsilon)], 'com.microsoft');
    return last ? { normed: outs[0]! } : { normed: outs[0]!, sum: outs[3]! };
  };

  let residual = embedded;
  let pending: string | undefined; // the previous layer's down projection, added by the next norm
  for (let l = 0; l < L; l++) {
    const shape = spec.perLayer[l]!;
    const N = shape.heads;
    const Nkv = shape.kvHeads;
    const planted = plantedSlices(spec, l);
    const p = `model.layers.${l}`;
    const s = `/model/layers.${l}`;
    const inputNorm = norm('input', l, pending ? residual : undefined, pending ?? residual);
    if (pending) residual = inputNorm.sum!;
    const qWidth = N * H;
    const kvWidth = Nkv * H;
    const packed = qWidth + 2 * kvWidth;
    let attention: string | undefined;
    const hf = (name: string, out: number, heads: number[]) => {
      const w = drawTensor(spec, `${p}.self_attn.${name}.weight`, 'matrix', spec.hidden, out);
      zeroColumns(w, spec.hidden, out, heads, H);
      return w;
    };
    const qkvValues = () => {
      const parts = [hf('q_proj', qWidth, planted.queryHeads), hf('k_proj', kvWidth, planted.kvHeads), hf('v_proj', kvWidth, planted.kvHeads)];
      const out = new Float32Array(spec.hidden * packed);
      for (let r = 0; r < spec.hidden; r++) {
        let at = r * packed;
        parts.forEach((part, i) => {
          const width = i === 0 ? qWidth : kvWidth;
          out.set(part.subarray(r * width, (r + 1) * width), at);
          at += width;
        });
      }
      return out;
    };
    if (spec.rotary === 'operator') {
      // The builder's unfused path: q/k/v MatMuls, RotaryEmbedding nodes, GroupQueryAttention without rotary tables.
      const project = (name: 'q_proj' | 'k_proj' | 'v_proj', width: number, heads: number[]) =>
        matmul(`${s}/attn/${name}/MatMul`, inputNorm.normed, `${p}.attn.${name}.MatMul.weight`, spec.hidden, width, () => hf(name, width, heads));
      const rotate = (x: string, role: 'q' | 'k', heads: number) =>
        g.node('RotaryEmbedding', `${s}/attn/${role}_rotary/RotaryEmbedding`, [x, 'position_ids', 'cos_cache', 'sin_cache'], [`${s}/attn/${role}_rotary/RotaryEmbedding/output_0`], [
          attr.int('interleaved', 0), attr.int('num_heads', heads), attr.int('rotary_embedding_dim', 0),
        ], 'com.microsoft');
      const q = rotate(project('q_proj', qWidth, planted.queryHeads), 'q', N);
      const k = rotate(project('k_proj', kvWidth, planted.kvHeads), 'k', Nkv);
      const v = project('v_proj', kvWidth, planted.kvHeads);
      attention = g.node(
        'GroupQueryAttention',
        `${s}/attn/GroupQueryAttention`,
        [q, k, v, `past_key_values.${l}.key`, `past_key_values.${l}.value`, seqlensK, totalLength],
        [`${s}/attn/GroupQueryAttention/output_0`, `present.${l}.key`, `present.${l}.value`],
        [attr.int('num_heads', N), attr.int('kv_num_heads', Nkv), attr.float('scale', 1 / Math.sqrt(H)), attr.int('local_window_size', -1), attr.float('softcap', 0), attr.int('do_rotary', 0)],
        'com.microsoft',
      );
    }
    let qkv = attention ? '' : matmul(`${s}/attn/qkv_proj/MatMul`, inputNorm.normed, `${p}.attn.qkv_proj.MatMul.weight`, spec.hidden, packed, qkvValues);
    if (!attention && spec.family === 'qwen2') {
      const bias = g.weight(`${p}.attn.qkv_proj.Add.bias`, [packed], () => {
        const out = new Float32Array(packed);
        const parts: [string, number, number[]][] = [['q_proj', qWidth, planted.queryHeads], ['k_proj', kvWidth, planted.kvHeads], ['v_proj', kvWidth, planted.kvHeads]];
        let at = 0;
        for (const [name, width, heads] of parts) {
          const b = drawTensor(spec, `${p}.self_attn.${name}.bias`, 'bias', width);
          zeroEntries(b, heads, H);
          out.set(b, at);
          at += width;
        }
        return out;
      });
      qkv = g.node('Add', `${s}/attn/qkv_proj/Add`, [qkv, bias], [`${s}/attn/qkv_proj/Add/output_0`]);
    }
    const gqa = `${s}/attn/GroupQueryAttention`;
    const context = attention ?? g.node(
      'GroupQueryAttention',
      gqa,
      [qkv, '', '', `past_key_values.${l}.key`, `past_key_values.${l}.value`, seqlensK, totalLength, 'cos_cache', 'sin_cache'],
      [`${gqa}/output_0`, `present.${l}.key`, `present.${l}.value`],
      [
        attr.int('num_heads', N), attr.int('kv_num_heads', Nkv), attr.float('scale', 1 / Math.sqrt(H)), attr.int('local_window_size', -1),
        attr.float('softcap', 0), attr.int('do_rotary', 1), attr.int('rotary_interleaved', 0),
      ],
      'com.microsoft',
    );
    const attended = matmul(`${s}/attn/o_proj/MatMul`, context, `${p}.attn.o_proj.MatMul.weight`, qWidth, spec.hidden, () => {
      const w = drawTensor(spec, `${p}.self_attn.o_proj.weight`, 'matrix', qWidth, spec.hidden);
      zeroRows(w, spec.hidden, planted.queryHeads, H);
      return w;
    });
    const post = norm('post_attention', l, residual, attended);
    residual = post.sum!;
    const ffn = (name: 'gate_proj' | 'up_proj') =>
      matmul(`${s}/mlp/${name}/MatMul`, post.normed, `${p}.mlp.${name}.MatMul.weight`, spec.hidden, shape.ffn, () => {
        const w = drawTensor(spec, `${p}.mlp.${name}.weight`, 'matrix', spec.hidden, shape.ffn);
        zeroColumns(w, spec.hidden, shape.ffn, planted.neurons, 1);
        return w;
      });
    const gate = ffn('gate_proj');
    const up = ffn('up_proj');
    const sigmoid = g.node('Sigmoid', `${s}/mlp/act_fn/Sigmoid`, [gate], [`${s}/mlp/act_fn/Sigmoid/output_0`]);
    const silu = g.node('Mul', `${s}/mlp/act_fn/Mul`, [gate, sigmoid], [`${s}/mlp/act_fn/Mul/output_0`]);
    const product = g.node('Mul', `${s}/mlp/Mul`, [silu, up], [`${s}/mlp/Mul/output_0`]);
    pending = matmul(`${s}/mlp/down_proj/MatMul`, product, `${p}.mlp.down_proj.MatMul.weight`, shape.ffn, spec.hidden, () => {
      const w = drawTensor(spec, `${p}.mlp.down_proj.weight`, 'matrix', shape.ffn, spec.hidden);
      zeroRows(w, spec.hidden, planted.neurons, 1);
      return w;
    });
  }
  const final = norm('final_norm', L, residual, pending!, true);
  const headName = spec.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  const head = () => {
    const drawn = drawTensor(spec, headName, spec.tieWordEmbeddings ? 'embedding' : 'matrix', spec.vocab, spec.hidden);
    const out = new Float32Array(spec.hidden * spec.vocab);
    for (let v = 0; v < spec.vocab; v++) for (let h = 0; h < spec.hidden; h++) out[h * spec.vocab + v] = drawn[v * spec.hidden + h]!;
    return out;
  };
  // No bias, scale or softcap after the head: it writes `logits` directly.
  matmul('/lm_head/MatMul', final.normed, 'lm_head.MatMul.weight', spec.hidden, spec.vocab, head, 'logits');
  return { name: 'main_graph', nodes: g.nodes, initializers: g.initializers, inputs, outputs };
}
