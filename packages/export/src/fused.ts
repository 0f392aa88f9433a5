/**
 * What pruning changes in onnxruntime's fused operators besides the sliced weights: the head
 * counts they state as attributes (`num_heads`, GroupQueryAttention's `kv_num_heads`,
 * Attention's `qkv_hidden_sizes`, a RotaryEmbedding's `num_heads` when it is set), and
 * MultiHeadAttention's packed q|k|v bias, cut once for all three parts. Rotary tables are per
 * head size and stay as they are.
 */
import { findFamily, type AttentionMatch, type HfModel } from '@zerolm/adapters';
import { gatherVector } from './slice';
import { findAttribute, intAttribute, makeAttribute, type NodeProto } from '@zerolm/onnx';
import type { GraphEditor } from './graph-edit';
import type { KeptShape } from './prune-onnx';

function setInt(node: NodeProto, name: string, value: number): void {
  node.attribute = node.attribute.map((a) => (a.name === name ? makeAttribute(name, value) : a));
}

/** Rewrites the head counts of one layer's fused attention operator (and its rotary nodes). */
export function rewriteFusedHeads(attention: AttentionMatch, before: { heads: number; kvHeads: number; headDim: number }, kept: KeptShape): void {
  const fused = attention.fused;
  if (!fused) return;
  const node = fused.node;
  if (findAttribute(node, 'num_heads')) setInt(node, 'num_heads', kept.heads);
  if (findAttribute(node, 'kv_num_heads')) setInt(node, 'kv_num_heads', kept.kvHeads);
  if (findAttribute(node, 'qkv_hidden_sizes')) {
    const widths = [kept.heads, kept.kvHeads, kept.kvHeads].map((h) => h * before.headDim);
    node.attribute = node.attribute.map((a) => (a.name === 'qkv_hidden_sizes' ? makeAttribute('qkv_hidden_sizes', widths) : a));
  }
  for (const { node: rotary, role } of fused.rotary) {
    const stated = intAttribute(rotary, 'num_heads', 0);
    if (stated > 0) setInt(rotary, 'num_heads', role === 'q' ? kept.heads : kept.kvHeads);
  }
}

/**
 * Cuts MultiHeadAttention's packed q|k|v bias to the kept columns of each part (`kept[role]`:
 * indices within that part), for the attention node alone.
 */
export function cutPackedBias(hf: HfModel, editor: GraphEditor, attention: AttentionMatch, kept: Record<'q' | 'k' | 'v', readonly number[]>): void {
  const packed = attention.fused?.packedBias;
  if (!packed) return;
  const tensor = editor.index.constantTensor(packed.tensor)!;
  const length = packed.ranges.v[1];
  const indices = (['q', 'k', 'v'] as const).flatMap((role) => kept[role].map((i) => i + packed.ranges[role][0]));
  const sliced = gatherVector(tensor, hf.onnx.baseDir, length, indices, packed.tensor);
  if (sliced) editor.replaceConstant(packed.tensor, sliced, [attention.fused!.node]);
}

/**
 * Why this exporter cannot prune the model of `hf` (one line), or undefined when it can: what its
 * family says (a graph whose pruning would not be exact) and weights it cannot slice yet.
 */
export function exportRefusal(hf: HfModel): string | undefined {
  const family = findFamily(hf.config.modelType)?.pruneRefusal?.(hf.config.raw);
  if (family) return family;
  for (const layer of hf.match.layers) {
    for (const m of [layer.attention.q.multiply, layer.attention.k.multiply, layer.attention.v.multiply, layer.attention.o, layer.ffn.up, layer.ffn.gate, layer.ffn.down]) {
      const q = m?.weight.quantization;
      if (q?.bits !== undefined) {
        return `layer ${layer.index} holds ${q.bits}-bit block-quantized ${m!.node.opType} weights ('${m!.weight.dataName}'), which this exporter cannot slice yet; prune the fp32 file of the model`;
      }
    }
  }
  return undefined;
}
