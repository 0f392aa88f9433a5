/**
 * Packed projections: one multiply whose output features hold several projections, cut apart
 * by Split or Slice nodes on the way to their readers. Which output columns a cut takes is read
 * from the graph: the features are followed through Reshape (their factorisation, e.g. GPT-NeoX's
 * `[heads, 3 * head_dim]` or ModernBERT's `[3, heads, head_dim]`) and Transpose to the cut's axis,
 * and the cut's range on that axis (constant bounds, or bounds computed from the static feature
 * sizes, as torch's chunk writes them) gives the columns:
 *
 * - Phi-3's `qkv_proj` (`[q | k | v]`, three Slices) and `gate_up_proj` (two chunk Slices): ranges;
 * - GPT-NeoX's `query_key_value` viewed `[b, s, heads, 3 * head_dim]` and chunked on the last axis:
 *   part p of every head, `h * 3 * head_dim + [p * head_dim, (p + 1) * head_dim)`;
 * - ModernBERT's `Wqkv` viewed `[b, s, 3, heads, head_dim]` and unbound on the `3` axis: thirds.
 */
import { intAttribute, intsAttribute, type GraphIndex, type NodeProto } from '@zerolm/onnx';
import { multiplyResult, type Cut, type WeightMultiply } from './walk';

/** Ops that move the features without mixing them. */
const FEATURE_PATH = new Set(['Reshape', 'Transpose', 'Cast', 'Identity']);

interface Axes {
  /** Per axis of the current tensor: the feature factor it holds, or -1 for batch / sequence axes. */
  readonly factorOf: number[];
  /** The sizes of the feature factors, row-major (the first factor varies slowest). */
  readonly factors: number[];
}

function constantNumbers(index: GraphIndex, name: string | undefined): number[] | undefined {
  const value = name ? index.constantValue(name) : undefined;
  return value ? Array.from(value as ArrayLike<number | bigint>, Number) : undefined;
}

/** The constant elements of a shape, undefined where traced (a Concat of constants and traced sizes). */
function shapeElements(index: GraphIndex, name: string | undefined): (number | undefined)[] | undefined {
  const constant = constantNumbers(index, name);
  if (constant) return constant;
  const concat = name ? index.producer(name) : undefined;
  if (concat?.opType !== 'Concat') return undefined;
  const out: (number | undefined)[] = [];
  for (const part of concat.input) {
    const values = constantNumbers(index, part);
    if (values) out.push(...values);
    else out.push(undefined);
  }
  return out;
}

/** The features after a Reshape to `target`: its trailing constants whose product is the width (one -1 may stand for the rest). */
function reshapeAxes(target: (number | undefined)[], width: number): Axes | undefined {
  const factors: number[] = [];
  let product = 1;
  let i = target.length - 1;
  for (; i >= 0 && product < width; i--) {
    const v = target[i];
    if (v === undefined || v === 0) return undefined;
    if (v === -1) {
      if (width % product !== 0) return undefined;
      factors.unshift(width / product);
      product = width;
      break;
    }
    factors.unshift(v);
    product *= v;
  }
  if (product !== width) return undefined;
  const outer = target.length - factors.length;
  return { factorOf: [...Array.from({ length: outer }, () => -1), ...factors.map((_, k) => k)], factors };
}

/** Evaluates a small integer expression over constants and the static sizes of `dims` (torch's chunk bounds). */
function evaluate(index: GraphIndex, name: string, sizeOf: (tensor: string, axis: number) => number | undefined, depth = 0): number | undefined {
  const constant = constantNumbers(index, name);
  if (constant) return constant.length === 1 ? constant[0] : undefined;
  const node = index.producer(name);
  if (!node || depth > 12) return undefined;
  const arg = (i: number) => (node.input[i] ? evaluate(index, node.input[i]!, sizeOf, depth + 1) : undefined);
  switch (node.opType) {
    case 'Cast':
    case 'Identity':
    case 'Unsqueeze':
    case 'Squeeze':
      return arg(0);
    case 'Gather': {
      const shape = index.producer(node.input[0] ?? '');
      const at = constantNumbers(index, node.input[1]);
      if (shape?.opType !== 'Shape' || !at || at.length !== 1) return undefined;
      return sizeOf(shape.input[0]!, at[0]!);
    }
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div': {
      const [a, b] = [arg(0), arg(1)];
      if (a === undefined || b === undefined) return undefined;
      return node.opType === 'Add' ? a + b : node.opType === 'Sub' ? a - b : node.opType === 'Mul' ? a * b : Math.floor(a / b);
    }
    default:
      return undefined;
  }
}

/** The range `[start, end)` a cut takes on its axis of size `size`, and the axis. */
function cutRange(index: GraphIndex, cut: Cut, rank: number, sizeOf: (tensor: string, axis: number) => number | undefined): { axis: number; start: number; end: number } | undefined {
  const node = cut.node;
  const normalize = (axis: number) => (axis < 0 ? axis + rank : axis);
  if (node.opType === 'Split') {
    const axis = normalize(intAttribute(node, 'axis', 0));
    const size = sizeOf(node.input[0]!, axis);
    if (size === undefined) return undefined;
    const parts = node.output.length;
    const sizes = constantNumbers(index, node.input[1]) ?? intsAttribute(node, 'split') ?? Array.from({ length: parts }, () => size / parts);
    const at = node.output.indexOf(cut.output);
    const start = sizes.slice(0, at).reduce((a, b) => a + b, 0);
    return { axis, start, end: start + sizes[at]! };
  }
  // Slice(data, starts, ends, axes, steps) with one axis and step 1.
  const axes = constantNumbers(index, node.input[3]) ?? [0];
  const steps = constantNumbers(index, node.input[4]) ?? [1];
  if (axes.length !== 1 || steps.some((s) => s !== 1)) return undefined;
  const axis = normalize(axes[0]!);
  const size = sizeOf(node.input[0]!, axis);
  const start = node.input[1] ? evaluate(index, node.input[1], sizeOf) : undefined;
  const end = node.input[2] ? evaluate(index, node.input[2], sizeOf) : undefined;
  if (size === undefined || start === undefined || end === undefined) return undefined;
  const clamp = (v: number) => Math.max(0, Math.min(size, v < 0 ? v + size : v));
  return { axis, start: clamp(start), end: clamp(end) };
}

/**
 * The output columns of `multiply` that `cut` takes, or undefined when the cut does not take a
 * part of its features (it slices something else, e.g. rotate_half's halves of a head).
 */
export function cutColumns(index: GraphIndex, multiply: WeightMultiply, cut: Cut): number[] | undefined {
  const width = multiply.weight.shape[1] as number;
  // The path of feature-preserving ops from the result to the cut's input.
  const start = multiplyResult(multiply);
  const target = cut.node.input[0]!;
  const parent = new Map<string, { from: string; node: NodeProto }>();
  const queue = [start];
  const seen = new Set([start]);
  while (queue.length > 0 && !seen.has(target)) {
    const tensor = queue.shift()!;
    for (const consumer of index.consumers(tensor)) {
      if (!FEATURE_PATH.has(consumer.opType ?? '') || consumer.input[0] !== tensor) continue;
      const out = consumer.output[0];
      if (out && !seen.has(out)) {
        seen.add(out);
        parent.set(out, { from: tensor, node: consumer });
        queue.push(out);
      }
    }
  }
  if (!seen.has(target)) return undefined;
  const path: NodeProto[] = [];
  for (let t = target; t !== start; t = parent.get(t)!.from) path.unshift(parent.get(t)!.node);
  // The result is [..., width]: the last axis is the one feature factor.
  let axes: Axes = { factorOf: [-1, -1, 0], factors: [width] };
  const staticSizes = new Map<string, Axes>([[start, axes]]);
  for (const node of path) {
    if (node.opType === 'Reshape') {
      const next = reshapeAxes(shapeElements(index, node.input[1]) ?? [], width);
      if (!next) return undefined;
      axes = next;
    } else if (node.opType === 'Transpose') {
      const perm = intsAttribute(node, 'perm') ?? axes.factorOf.map((_, i) => axes.factorOf.length - 1 - i);
      axes = { factorOf: perm.map((p) => axes.factorOf[p]!), factors: axes.factors };
    }
    staticSizes.set(node.output[0]!, axes);
  }
  const sizeOf = (tensor: string, axis: number): number | undefined => {
    const known = staticSizes.get(tensor);
    if (!known) return undefined;
    const a = axis < 0 ? axis + known.factorOf.length : axis;
    const factor = known.factorOf[a];
    return factor === undefined || factor < 0 ? undefined : known.factors[factor];
  };
  const range = cutRange(index, cut, axes.factorOf.length, sizeOf);
  if (!range) return undefined;
  const factor = axes.factorOf[range.axis];
  if (factor === undefined || factor < 0) return undefined;
  const size = axes.factors[factor]!;
  if (range.start === 0 && range.end === size) return undefined;
  // Feature f has coordinate floor(f / inner) mod size on the cut factor.
  const inner = axes.factors.slice(factor + 1).reduce((a, b) => a * b, 1);
  const columns: number[] = [];
  for (let f = 0; f < width; f++) {
    const coordinate = Math.floor(f / inner) % size;
    if (coordinate >= range.start && coordinate < range.end) columns.push(f);
  }
  return columns;
}

/** `[start, end)` when the columns are one contiguous range. */
export function asRange(columns: readonly number[]): [number, number] | undefined {
  const start = columns[0]!;
  return columns.every((c, i) => c === start + i) ? [start, start + columns.length] : undefined;
}
