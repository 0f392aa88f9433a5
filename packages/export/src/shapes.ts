/**
 * The constants that carry a layer's head counts in its attention graph: the targets of the
 * Reshape / Expand nodes between the q/k/v projections and the output projection, and the sizes
 * of a fused q/k/v Split. Exporters write them as Constant nodes concatenated with traced sizes
 * (`Concat(B, S, heads, head_dim)`), as one constant (`[0, 0, heads, head_dim]`), or behind
 * torch's `Expand` -1 handling (`Where(Equal(Reshape(Concat(..), [-1]), -1), 1, ..)`).
 *
 * Which element is which is read from its position in the target, never from its value alone
 * (n_rep may equal the key-value head count, head_dim the head count):
 * - rank 5, `[B, kv, n_rep, S, D]` (repeat_kv): element 1 is the key-value head count, element 2
 *   n_rep (kept: units are whole key-value groups); `[B, S, 3, heads, D]` (a packed q/k/v viewed
 *   by part and head, without grouped-query attention): element 3 is the head count;
 * - rank 4, `[B, S, H, D]` or `[B, H, S, D]`: the head count is the one constant of elements 1
 *   and 2 that equals the query or key-value head count; element 3 is the head size;
 * - rank 2 or 3, `[B, S, W]` or `[-1, W]`: the last element is a width, heads * head_dim,
 *   kv_heads * head_dim, or the fused q/k/v width.
 * Any other constant that equals a count that changes is an error: the exporter refuses what it
 * cannot place rather than guess.
 */
import { dataInputs, multiplyResult, SHAPE_OPS, type LayerMatch } from '@zerolm/adapters';
import {
  encodeTensorData,
  findAttribute,
  intsAttribute,
  makeAttribute,
  newTensorProto,
  tensorElementCount,
  DataType,
  type GraphIndex,
  type NodeProto,
  type TensorProto,
} from '@zerolm/onnx';
import type { GraphEditor } from './graph-edit';

/** Head counts of one layer as its shape constants state them. */
export interface HeadShape {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Width of a fused q/k/v projection's output (absent when q, k and v are separate). */
  readonly fused?: number;
}

/** Ops through which a constant shape reaches a Reshape / Expand unchanged in meaning. */
const SHAPE_PASS = new Set(['Where', 'Reshape', 'Cast', 'Identity']);
const ELEMENTWISE = new Set(['Cast', 'Identity', 'Div', 'Mul', 'Add', 'Sub', 'Floor', 'Ceil', 'Neg', 'Sqrt']);

function label(node: NodeProto): string {
  return `${node.opType} node '${node.name ?? node.output[0] ?? ''}'`;
}

/**
 * The Reshape and Expand nodes fed by the results of the `starts` projections: found walking
 * forward over data inputs, stopping at weight multiplies and quantizers, and kept only inside
 * `region` (the attention or FFN nodes the matcher found).
 */
export function shapeTargets(
  index: GraphIndex,
  starts: readonly string[],
  region: ReadonlySet<NodeProto>,
  stopNodes: ReadonlySet<NodeProto>,
  stopTensors: ReadonlySet<string>,
): NodeProto[] {
  const seenTensors = new Set<string>(starts);
  const visited = new Set<NodeProto>();
  const queue = [...seenTensors];
  while (queue.length > 0) {
    const tensor = queue.shift()!;
    for (const node of index.consumers(tensor)) {
      const op = node.opType ?? '';
      if (visited.has(node) || stopNodes.has(node) || SHAPE_OPS.has(op) || op === 'DynamicQuantizeLinear') continue;
      if (!dataInputs(node).includes(tensor)) continue;
      visited.add(node);
      for (const out of node.output) {
        if (!out || seenTensors.has(out) || stopTensors.has(out)) continue;
        seenTensors.add(out);
        queue.push(out);
      }
    }
  }
  return [...visited].filter((n) => (n.opType === 'Reshape' || n.opType === 'Expand') && region.has(n));
}

/** The shape targets of a layer's attention (fed by its q/k/v projections). */
export function attentionShapeTargets(index: GraphIndex, layer: LayerMatch, stopNodes: ReadonlySet<NodeProto>, stopTensors: ReadonlySet<string>): NodeProto[] {
  const a = layer.attention;
  return shapeTargets(index, [a.q, a.k, a.v].map((p) => multiplyResult(p.multiply)), a.nodes, stopNodes, stopTensors);
}

/** The shape targets of a layer's FFN (fed by its up/gate projections, e.g. GPT-2's Conv1D reshape back to [B, S, n_inner]). */
export function ffnShapeTargets(index: GraphIndex, layer: LayerMatch, stopNodes: ReadonlySet<NodeProto>, stopTensors: ReadonlySet<string>): NodeProto[] {
  const f = layer.ffn;
  const starts = [f.up, ...(f.gate ? [f.gate] : [])].map(multiplyResult);
  return shapeTargets(index, starts, f.nodes, stopNodes, stopTensors);
}

interface ShapePart {
  readonly name: string;
  /** Values when the part is a constant. */
  readonly values?: number[];
  /** Elements it contributes (undefined: cannot tell). */
  readonly length?: number;
}

interface ShapeSource {
  /** The node that reads the source (the target itself, or the last node of a Where/Reshape chain). */
  readonly reader: NodeProto;
  readonly direct: boolean;
  readonly concat?: NodeProto;
  /** The constant tensor, when the whole shape is one. */
  readonly constant?: string;
  readonly parts: ShapePart[];
}

function constantNumbers(index: GraphIndex, name: string): number[] | undefined {
  const value = index.constantValue(name);
  return value && Array.from(value as ArrayLike<number | bigint>, Number);
}

/** Whether `name` is a 0-d integer computed from traced sizes (`Gather(Shape(x), i)` and arithmetic on it). */
function isScalar(index: GraphIndex, name: string, depth = 0): boolean {
  const tensor = index.constantTensor(name);
  if (tensor) return tensor.dims.length === 0;
  const producer = index.producer(name);
  if (!producer || depth > 8) return false;
  if (producer.opType === 'Gather') {
    const indices = producer.input[1] ? index.constantTensor(producer.input[1]) : undefined;
    return !!indices && indices.dims.length === 0 && index.producer(producer.input[0] ?? '')?.opType === 'Shape';
  }
  if (ELEMENTWISE.has(producer.opType ?? '')) return producer.input.every((i) => !!i && isScalar(index, i, depth + 1));
  return false;
}

function partLength(index: GraphIndex, name: string, depth = 0): number | undefined {
  const tensor = index.constantTensor(name);
  if (tensor) return tensorElementCount(tensor);
  const producer = index.producer(name);
  if (!producer || depth > 8) return undefined;
  if (producer.opType === 'Cast' || producer.opType === 'Identity') return partLength(index, producer.input[0] ?? '', depth + 1);
  if (producer.opType === 'Unsqueeze') {
    const axes = intsAttribute(producer, 'axes') ?? (producer.input[1] ? constantNumbers(index, producer.input[1]) : undefined);
    if (axes?.length === 1 && isScalar(index, producer.input[0] ?? '')) return 1;
  }
  return undefined;
}

function traceShapeSource(index: GraphIndex, target: NodeProto): ShapeSource | undefined {
  let name = target.input[1];
  let reader = target;
  for (let guard = 0; name && guard < 8; guard++) {
    if (index.isConstant(name)) {
      const values = constantNumbers(index, name)!;
      return { reader, direct: reader === target, constant: name, parts: [{ name, values, length: values.length }] };
    }
    const producer = index.producer(name);
    if (!producer) return undefined;
    if (producer.opType === 'Concat') {
      const parts = producer.input.map((part): ShapePart => {
        const values = index.isConstant(part) ? constantNumbers(index, part) : undefined;
        return values ? { name: part, values, length: values.length } : { name: part, length: partLength(index, part) };
      });
      return { reader, direct: reader === target, concat: producer, parts };
    }
    if (!SHAPE_PASS.has(producer.opType ?? '')) return undefined;
    reader = producer;
    name = producer.opType === 'Where' ? producer.input[2] : producer.input[0];
  }
  return undefined;
}

/** The target's elements (undefined where traced at run time), or undefined when their positions are unknown. */
function elementsOf(parts: readonly ShapePart[]): (number | undefined)[] | undefined {
  const out: (number | undefined)[] = [];
  for (const part of parts) {
    if (part.length === undefined) return undefined;
    if (part.values) out.push(...part.values);
    else for (let i = 0; i < part.length; i++) out.push(undefined);
  }
  return out;
}

function describe(elements: readonly (number | undefined)[]): string {
  return `target [${elements.map((e) => (e === undefined ? '?' : e)).join(', ')}]`;
}

/** Fails when an element not placed by a rule equals a count that changes: it could be one. */
function checkUnexplained(elements: readonly (number | undefined)[], explained: ReadonlySet<number>, changing: ReadonlySet<number>, where: string): void {
  elements.forEach((v, i) => {
    if (!explained.has(i) && v !== undefined && changing.has(v)) {
      throw new Error(`${where}: element ${i} (${v}) equals a count that changes, at a position the exporter cannot place (${describe(elements)})`);
    }
  });
}

/** FFN width in a `[B, S, W]` / `[-1, W]` target (GPT-2's Conv1D reshapes). */
function rewriteFfnElements(elements: readonly (number | undefined)[], before: number, after: number, where: string): (number | undefined)[] {
  const out = [...elements];
  const r = elements.length;
  const explained = new Set<number>();
  if ((r === 2 || r === 3) && elements[r - 1] === before) {
    out[r - 1] = after;
    explained.add(r - 1);
  }
  if (after !== before) checkUnexplained(elements, explained, new Set([before]), where);
  return out;
}

/** Rewrites the head counts in one target; returns the new elements. */
function rewriteElements(elements: readonly (number | undefined)[], before: HeadShape, after: HeadShape, where: string): (number | undefined)[] {
  const out = [...elements];
  const r = elements.length;
  const explained = new Set<number>();
  const D = before.headDim;
  const fail = (message: string): never => {
    throw new Error(`${where}: ${message} (${describe(elements)})`);
  };
  const swapCount = (v: number): number | undefined => (v === before.heads ? after.heads : v === before.kvHeads ? after.kvHeads : undefined);
  if (r === 5 && elements[2] === 3 && elements[3] === before.heads && before.heads === before.kvHeads) {
    // A packed q/k/v viewed [B, S, 3, heads, D] (ModernBERT's Wqkv, nomic's einops): the heads.
    out[3] = after.heads;
    explained.add(1).add(2).add(3).add(4);
  } else if (r === 5) {
    const [, kv, rep] = elements;
    if (kv !== undefined) {
      if (kv !== before.kvHeads) fail(`expected ${before.kvHeads} key-value heads before n_rep`);
      out[1] = after.kvHeads;
      explained.add(1);
    }
    if (rep !== undefined) {
      if (rep * before.kvHeads !== before.heads) fail(`expected n_rep = ${before.heads / before.kvHeads}`);
      explained.add(2);
    }
    explained.add(4);
  } else if (r === 4) {
    const candidates = [1, 2].filter((p) => {
      const v = elements[p];
      return v !== undefined && v > 0 && swapCount(v) !== undefined;
    });
    if (candidates.length > 1) fail('two elements could be the head count');
    for (const p of candidates) {
      out[p] = swapCount(elements[p]!);
      explained.add(p);
    }
    explained.add(3);
  } else if (r === 2 || r === 3) {
    const last = elements[r - 1];
    if (last !== undefined) {
      if (last === before.heads * D) out[r - 1] = after.heads * D;
      else if (last === before.kvHeads * D) out[r - 1] = after.kvHeads * D;
      else if (before.fused !== undefined && last === before.fused) out[r - 1] = after.fused;
      explained.add(r - 1);
    }
  }
  const changing = new Set<number>();
  if (after.heads !== before.heads) changing.add(before.heads).add(before.heads * D);
  if (after.kvHeads !== before.kvHeads) changing.add(before.kvHeads).add(before.kvHeads * D);
  if (before.fused !== undefined && after.fused !== before.fused) changing.add(before.fused);
  checkUnexplained(elements, explained, changing, where);
  return out;
}

function intTensorLike(original: TensorProto, values: readonly number[]): TensorProto {
  const dataType = original.dataType ?? DataType.INT64;
  return newTensorProto({ dims: [...original.dims], dataType, rawData: encodeTensorData(dataType, values) });
}

/** Shape computations already rewritten (shared by all layers of a graph), with the elements they got. */
export type ShapeClaims = Map<NodeProto | string, string>;

/**
 * Rewrites the head counts in the shape targets of one layer's attention (see the file comment).
 * `claims` is shared by all layers of a graph: a shape computation reached from two targets
 * must get the same rewrite from both.
 */
export function rewriteHeadShapes(editor: GraphEditor, targets: readonly NodeProto[], before: HeadShape, after: HeadShape, at: string, claims: ShapeClaims): void {
  const counts = [before.heads, before.kvHeads, before.heads * before.headDim, before.kvHeads * before.headDim, ...(before.fused ? [before.fused] : [])];
  rewriteTargets(editor, targets, counts, (elements, where) => rewriteElements(elements, before, after, where), at, claims);
}

/** Rewrites the FFN width in the shape targets of one layer's FFN. */
export function rewriteFfnShapes(editor: GraphEditor, targets: readonly NodeProto[], before: number, after: number, at: string, claims: ShapeClaims): void {
  rewriteTargets(editor, targets, [before], (elements, where) => rewriteFfnElements(elements, before, after, where), at, claims);
}

function rewriteTargets(
  editor: GraphEditor,
  targets: readonly NodeProto[],
  counts: readonly number[],
  rewrite: (elements: readonly (number | undefined)[], where: string) => (number | undefined)[],
  at: string,
  claims: ShapeClaims,
): void {
  const index = editor.index;
  for (const target of targets) {
    const where = `${at}: ${label(target)}`;
    const source = traceShapeSource(index, target);
    if (!source) continue; // computed entirely at run time: nothing to rewrite
    const elements = elementsOf(source.parts);
    if (!elements) {
      const constants = source.parts.flatMap((p) => p.values ?? []);
      if (constants.some((v) => counts.includes(v))) {
        throw new Error(`${where}: its shape mixes constants with traced parts of unknown length; cannot tell which element is which`);
      }
      continue;
    }
    const rewritten = rewrite(elements, where);
    if (rewritten.every((v, i) => v === elements[i])) continue;
    const key = JSON.stringify(rewritten);
    const claimKey = source.concat ?? source.constant!;
    if (!source.direct) {
      // Behind a Where/Reshape chain: the shape computation must belong to this target alone.
      const claimed = claims.get(claimKey);
      if (claimed === key) continue;
      if (claimed !== undefined) throw new Error(`${where}: its shape computation is shared with a target that needs other head counts`);
      const sourceTensor = source.concat ? source.concat.output[0]! : source.constant!;
      if (index.consumers(sourceTensor).length !== 1) throw new Error(`${where}: its shape computation is shared with other nodes`);
      claims.set(claimKey, key);
    }
    let concat = source.concat;
    if (concat && source.direct && index.consumers(concat.output[0]!).length > 1) {
      // Shared with other nodes (a common-subexpression-eliminated graph): give this target its own copy.
      const output = editor.freshName(`${concat.output[0]}_pruned`);
      const clone: NodeProto = { ...concat, input: [...concat.input], output: [output], attribute: [...concat.attribute] };
      if (concat.name) clone.name = editor.freshName(`${concat.name}_pruned`);
      editor.insert(clone, concat, 'after');
      editor.renameInput(target, concat.output[0]!, output);
      concat = clone;
    }
    let offset = 0;
    for (const part of source.parts) {
      const length = part.length!;
      const slice = rewritten.slice(offset, offset + length);
      offset += length;
      if (!part.values || slice.every((v, i) => v === part.values![i])) continue;
      const tensor = intTensorLike(index.constantTensor(part.name)!, slice as number[]);
      editor.replaceConstant(part.name, tensor, [concat ?? source.reader]);
    }
  }
}

/**
 * Sets the output sizes of a fused q/k/v Split: its `split` input (opset 13+) or attribute, added
 * when the split was into equal parts and no longer is.
 */
export function rewriteSplitSizes(editor: GraphEditor, split: NodeProto, sizes: readonly number[], opset: number, at: string): void {
  const index = editor.index;
  const sizesInput = split.input[1];
  if (sizesInput) {
    const tensor = index.constantTensor(sizesInput);
    if (!tensor) throw new Error(`${at}: the sizes of ${label(split)} are computed at run time`);
    const current = constantNumbers(index, sizesInput)!;
    if (current.every((v, i) => v === sizes[i])) return;
    editor.replaceConstant(sizesInput, intTensorLike(tensor, sizes), [split]);
    return;
  }
  const attribute = findAttribute(split, 'split');
  if (attribute) {
    split.attribute = split.attribute.map((a) => (a === attribute ? makeAttribute('split', [...sizes]) : a));
    return;
  }
  if (sizes.every((s) => s === sizes[0])) return; // still equal parts
  if (opset >= 13) {
    const name = editor.freshName(`${split.name ?? split.output[0]}_sizes`);
    editor.addInitializer(newTensorProto({ name, dims: [sizes.length], dataType: DataType.INT64, rawData: encodeTensorData(DataType.INT64, sizes) }));
    split.input = [split.input[0]!, name];
    split.attribute = split.attribute.filter((a) => a.name !== 'num_outputs');
  } else {
    split.attribute = [...split.attribute, makeAttribute('split', [...sizes])];
  }
}
