/**
 * What pruning changes in onnxruntime's fused operators besides the sliced weights: the head
 * counts they state as attributes (`num_heads`, GroupQueryAttention's `kv_num_heads`,
 * Attention's `qkv_hidden_sizes`, a RotaryEmbedding's `num_heads` when it is set), and
 * MultiHeadAttention's packed q|k|v bias, cut once for all three parts. Rotary tables are per
 * head size and stay as they are.
 */
import { findFamily, type AttentionMatch, type HeadBias, type HfModel, type WidthNorm } from '@zerolm/adapters';
import { gatherVector } from './slice';
import {
  DataType,
  decodeTensorAsFloat32,
  encodeTensorData,
  findAttribute,
  float32ToFloat16Array,
  intAttribute,
  makeAttribute,
  makeNode,
  newTensorProto,
  type NodeProto,
  type TensorProto,
} from '@zerolm/onnx';
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
 * family says (a graph whose pruning would not be exact).
 */
export function exportRefusal(hf: HfModel): string | undefined {
  return findFamily(hf.config.modelType)?.pruneRefusal?.(hf.config.raw);
}

/**
 * Cuts a norm over a projection's whole width (OLMo 2's q/k norms) to the projection's kept
 * columns and keeps its divisor: an RMSNorm over N features, cut to N' of them, gets its weight
 * times sqrt(N / N') and its epsilon times N / N', so that for removed features that are zero it
 * computes exactly what it did (`x w c / sqrt(S / N' + eps') = x w / sqrt(S / N + eps)`). A
 * LayerNorm over the width cannot be kept that way (its mean changes): refused.
 */
export function cutWidthNorm(hf: HfModel, editor: GraphEditor, norm: WidthNorm, kept: readonly number[], at: string): void {
  if (kept.length === norm.width) return;
  if (norm.kind !== 'rms') throw new Error(`${at}: the ${norm.role} projection is normalised over its whole width by a LayerNorm, whose mean changes when heads go; cannot prune its heads exactly`);
  const factor = norm.width / kept.length;
  for (const { tensor, reader } of norm.vectors) {
    const stored = editor.index.constantTensor(tensor)!;
    const values = decodeTensorAsFloat32(stored, { baseDir: hf.onnx.baseDir });
    const sliced = Float32Array.from(kept, (i) => values[i]! * Math.sqrt(factor));
    editor.replaceConstant(tensor, floatLike(stored, sliced, [kept.length]), [reader]);
  }
  if (norm.epsilon) {
    const stored = editor.index.constantTensor(norm.epsilon.tensor)!;
    const eps = decodeTensorAsFloat32(stored, { baseDir: hf.onnx.baseDir })[0]!;
    editor.replaceConstant(norm.epsilon.tensor, floatLike(stored, Float32Array.of(eps * factor), stored.dims.map(Number)), [norm.epsilon.reader]);
  }
}

/** A tensor of `values` in the stored type of `like` (float32 or float16). */
function floatLike(like: TensorProto, values: Float32Array, dims: number[]): TensorProto {
  const dataType = like.dataType ?? DataType.FLOAT;
  const raw = dataType === DataType.FLOAT16 ? new Uint8Array(float32ToFloat16Array(values).buffer) : encodeTensorData(DataType.FLOAT, values);
  if (dataType !== DataType.FLOAT && dataType !== DataType.FLOAT16) throw new Error(`norm weight '${like.name ?? ''}' is stored as ${dataType}, not float32 or float16`);
  return newTensorProto({ dims, dataType, rawData: raw });
}

/**
 * The bounds of a Slice that cuts one part out of a packed projection whose columns are cut
 * (Phi-3's `qkv[..., a:b]` and `gate_up` chunk): the part's new range among the kept columns.
 * Bounds computed at run time from the tensor's size follow by themselves; constant ones are
 * rewritten; the end of the last part (INT64_MAX, or the width) stays valid as it is.
 */
export function rewriteCutBounds(editor: GraphEditor, cut: NodeProto | undefined, part: readonly number[], kept: readonly number[], before: number, at: string): void {
  if (!cut || cut.opType !== 'Slice') return;
  const keptSet = new Set(kept);
  const start = kept.filter((c) => c < part[0]!).length;
  const end = start + part.filter((c) => keptSet.has(c)).length;
  const index = editor.index;
  for (const [slot, value] of [[1, start], [2, end]] as const) {
    const name = cut.input[slot];
    const constant = name ? index.constantTensor(name) : undefined;
    if (!name || !constant) continue;
    const current = Number(index.constantValue(name)![0]);
    const old = slot === 1 ? part[0]! : part[part.length - 1]! + 1;
    if (current !== old) {
      // Past the end (INT64_MAX, or the whole width) for the last part: still the end.
      if (slot === 2 && old === before && current >= before) continue;
      throw new Error(`${at}: the ${slot === 1 ? 'start' : 'end'} of ${cut.opType} '${cut.name ?? ''}' is ${current}, expected ${old}`);
    }
    if (current === value) continue;
    const dataType = constant.dataType ?? DataType.INT64;
    editor.replaceConstant(name, newTensorProto({ dims: [...constant.dims].map(Number), dataType, rawData: encodeTensorData(dataType, [value]) }), [cut]);
  }
}

/**
 * Gives one layer the kept heads of a per-head score bias it shares with other layers (MPNet's
 * relative position bias): `Gather(bias, kept heads, axis=1)` before that layer's Add only.
 */
export function gatherHeadBias(editor: GraphEditor, bias: HeadBias, keptHeads: readonly number[], at: string): void {
  const indices = editor.freshName(`${bias.operand}_kept_heads`);
  editor.addInitializer(newTensorProto({ name: indices, dims: [keptHeads.length], dataType: DataType.INT64, rawData: encodeTensorData(DataType.INT64, keptHeads) }));
  const output = editor.freshName(`${bias.operand}_pruned`);
  const gather = makeNode('Gather', [bias.operand, indices], [output], { axis: 1 }, { name: editor.freshName(`/zerolm/${at.replace(/[^\w.]+/g, '_')}/Gather`) });
  editor.insert(gather, bias.add, 'before');
  editor.renameInput(bias.add, bias.operand, output);
}
