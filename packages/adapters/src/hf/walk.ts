/**
 * The walks the structural matcher is made of: weight multiplies (a MatMul-like node whose right
 * operand resolves to a constant), walks back over data inputs to the multiplies a tensor comes
 * from, and walks forward through pass-through ops. Family-agnostic, names never read.
 */
import { GraphIndex, OnnxError, resolveMatMulWeight, resolveWeight, type NodeProto, type ResolvedWeight } from '@zerolm/onnx';

export const MATMUL_OPS: ReadonlySet<string> = new Set(['MatMul', 'Gemm', 'MatMulInteger', 'MatMulIntegerToFloat', 'DynamicQuantizeMatMul', 'MatMulNBits', 'MatMulBnb4']);

/** Ops that compute shapes or indices, never activations: walks stop there. */
export const SHAPE_OPS: ReadonlySet<string> = new Set(['Shape', 'Size', 'ConstantOfShape', 'Range', 'NonZero', 'EyeLike']);

/** For ops whose later inputs are shapes, axes or sizes: which inputs carry activations. */
const DATA_INPUTS: Readonly<Record<string, readonly number[]>> = {
  Reshape: [0],
  Expand: [0],
  Slice: [0],
  Split: [0],
  Tile: [0],
  Unsqueeze: [0],
  Squeeze: [0],
  Pad: [0],
  Transpose: [0],
  Cast: [0],
  Where: [1, 2],
  Dropout: [0],
  ReduceMean: [0],
  ReduceSum: [0],
  // onnxruntime's fused operators: the activations they read (weights, biases, masks, caches and
  // rotary tables are the other inputs).
  LayerNormalization: [0],
  SimplifiedLayerNormalization: [0],
  SkipLayerNormalization: [0, 1],
  SkipSimplifiedLayerNormalization: [0, 1],
  RotaryEmbedding: [0],
  BiasGelu: [0],
  FastGelu: [0],
  QuickGelu: [0],
  BiasSplitGelu: [0],
  Attention: [0],
  MultiHeadAttention: [0, 1, 2],
  GroupQueryAttention: [0, 1, 2],
  EmbedLayerNormalization: [],
};

/** A weight multiply: the MatMul-like node, its weight, and the float tensor it produces. */
export interface WeightMultiply {
  readonly node: NodeProto;
  readonly weight: ResolvedWeight;
  /** The float result: the node's output, or (MatMulInteger) the output of the Mul by the scales. */
  readonly output: string;
  /**
   * The constant bias added to the result: an Add right after, or the node that adds it itself
   * (Gemm's C input; onnxruntime's fused SkipLayerNormalization `bias`, BiasGelu / FastGelu
   * `bias`, Attention's packed q/k/v bias, MultiHeadAttention's). `output` is where the result
   * ends after it (the product itself when the bias is added inside a fused operator that does
   * more). `offset`: where this multiply's elements start in a packed bias shared by q, k and v.
   */
  readonly bias?: { readonly add: NodeProto; readonly tensor: string; readonly output: string; readonly offset?: number };
}

/** Where the output of a multiply ends after its bias. */
export function multiplyResult(m: WeightMultiply): string {
  return m.bias ? m.bias.output : m.output;
}

/** A projection: a weight multiply and, for fused q/k/v, which part of its output columns. */
export interface Projection {
  readonly multiply: WeightMultiply;
  /**
   * Output columns of a packed q/k/v projection that an attention operator cuts itself
   * (GroupQueryAttention's packed query, Attention's packed weight); absent when a Split cuts it
   * or it is not packed.
   */
  readonly columns?: readonly [number, number];
  /**
   * The output columns of a packed projection as an explicit list, where they are not one range:
   * GPT-NeoX's per-head `[heads, 3, head_dim]` layout. Absent when `columns` or a Split says it.
   */
  readonly indices?: readonly number[];
  /** The Split or Slice that cuts this projection out of a packed one. */
  readonly cut?: NodeProto;
  /** Index of the Split output that carries this projection (GPT-2's fused c_attn cut on its columns); absent otherwise. */
  readonly splitIndex?: number;
  /** The Split node of a fused projection. */
  readonly split?: NodeProto;
}

export class MatchError extends OnnxError {}

export function fail(message: string): never {
  throw new MatchError(`cannot map the graph to Attention/FFN modules: ${message}`);
}

export function label(node: NodeProto): string {
  return `${node.opType} '${node.name ?? node.output[0] ?? '?'}'`;
}

/** The inputs of `node` that carry activations (not shapes, axes or sizes). */
export function dataInputs(node: NodeProto): string[] {
  const op = node.opType ?? '';
  const indices = DATA_INPUTS[op];
  const inputs = indices ? indices.map((i) => node.input[i]) : node.input;
  return inputs.filter((n): n is string => !!n);
}

/** The constant operand of a binary node, if exactly one operand is constant. */
export function constantOperand(index: GraphIndex, node: NodeProto): string | undefined {
  const [a, b] = node.input;
  const ca = !!a && index.isConstant(a);
  const cb = !!b && index.isConstant(b);
  if (ca === cb) return undefined;
  return ca ? a : b;
}

export function findWeightMultiplies(index: GraphIndex, baseDir: string): WeightMultiply[] {
  const found: WeightMultiply[] = [];
  for (const node of index.graph.node) {
    if (isPackedAttention(node)) {
      const packed = packedAttentionMultiply(index, node, baseDir);
      if (packed) found.push(packed);
      continue;
    }
    if (!MATMUL_OPS.has(node.opType ?? '')) continue;
    const left = node.input[0];
    if (!left || index.isConstant(left)) continue;
    let weight: ResolvedWeight | undefined;
    try {
      weight = resolveMatMulWeight(index, node, 1, { baseDir });
    } catch (error) {
      if (error instanceof OnnxError) fail(`${label(node)}: ${error.message}`);
      throw error;
    }
    if (!weight || weight.shape.length !== 2) continue;
    let output = node.output[0] as string;
    if (node.opType === 'MatMulInteger') {
      // MatMulInteger -> Cast -> Mul(scales): the float result is the Mul's output.
      const cast = index.consumers(output).find((c) => c.opType === 'Cast');
      const mul = cast && index.consumers(cast.output[0] as string).find((c) => c.opType === 'Mul');
      if (!mul) fail(`${label(node)} is not followed by Cast and Mul by its scales`);
      output = mul.output[0] as string;
    }
    const cols = weight.shape[1] as number;
    const gemmBias = node.opType === 'Gemm' ? node.input[2] : undefined;
    if (gemmBias && index.isConstant(gemmBias)) {
      found.push({ node, weight, output, bias: { add: node, tensor: gemmBias, output } });
      continue;
    }
    const bias = index.consumers(output).length === 1 ? biasAfter(index, index.consumers(output)[0]!, output, cols) : undefined;
    found.push(bias ? { node, weight, output, bias } : { node, weight, output });
  }
  return found;
}

function elementCount(index: GraphIndex, name: string): number | undefined {
  return index.constantTensor(name)?.dims.reduce((a, b) => a * Number(b), 1);
}

/** Where fused operators take the bias of the product they read (input index), when they do. */
const FUSED_BIAS_INPUT: Readonly<Record<string, number>> = {
  SkipLayerNormalization: 4,
  SkipSimplifiedLayerNormalization: 3,
  BiasGelu: 1,
  FastGelu: 1,
};

/** The constant bias `consumer` adds to `product` (`cols` wide), if it adds one. */
function biasAfter(index: GraphIndex, consumer: NodeProto, product: string, cols: number): WeightMultiply['bias'] {
  if (consumer.opType === 'Add' && consumer.input.length === 2) {
    const tensor = constantOperand(index, consumer);
    return tensor && elementCount(index, tensor) === cols ? { add: consumer, tensor, output: consumer.output[0] as string } : undefined;
  }
  const at = FUSED_BIAS_INPUT[consumer.opType ?? ''];
  const tensor = at === undefined ? undefined : consumer.input[at];
  // The product is the operator's first input (the skip input of a SkipLayerNormalization may
  // be either of the first two, depending on the onnxruntime version).
  if (!tensor || !index.isConstant(tensor) || elementCount(index, tensor) !== cols || !consumer.input.slice(0, 2).includes(product)) return undefined;
  return { add: consumer, tensor, output: product };
}

/** com.microsoft `Attention`: one node with the packed q/k/v weight (input 1) and bias (input 2). */
export function isPackedAttention(node: NodeProto): boolean {
  return node.opType === 'Attention' && node.domain === 'com.microsoft';
}

/**
 * The weight multiply of an `Attention` node: its packed `[hidden, q | k | v]` weight, its packed
 * bias, and as output the attention's context (the projection never exists as a tensor).
 */
function packedAttentionMultiply(index: GraphIndex, node: NodeProto, baseDir: string): WeightMultiply | undefined {
  const name = node.input[1];
  if (!name) return undefined;
  let weight: ResolvedWeight | undefined;
  try {
    weight = resolveWeight(index, name, { baseDir });
  } catch (error) {
    if (error instanceof OnnxError) fail(`${label(node)}: ${error.message}`);
    throw error;
  }
  if (!weight || weight.shape.length !== 2) fail(`${label(node)}: its packed q/k/v weight '${name}' is not a constant matrix`);
  const output = node.output[0] as string;
  const biasName = node.input[2];
  const cols = weight.shape[1] as number;
  if (biasName && index.isConstant(biasName) && elementCount(index, biasName) === cols) {
    return { node, weight, output, bias: { add: node, tensor: biasName, output } };
  }
  return { node, weight, output };
}

/** A Split output or Slice that cuts part of a multiply's result on the way to its reader. */
export interface Cut {
  readonly node: NodeProto;
  /** The tensor the cut produces (the Split output taken, or the Slice's output). */
  readonly output: string;
}

export interface UpstreamHit {
  multiply: WeightMultiply;
  /** Index of the Split output on every path to this multiply, when one Split cut it on all of them. */
  splitIndex?: number;
  split?: NodeProto;
  /**
   * The cut closest to the multiply on each path that reached it (undefined for a path without
   * one), each distinct cut once: one cut on every path is a part of a packed projection.
   */
  cuts: (Cut | undefined)[];
}

/**
 * Weight multiplies reached walking back from `start` over data inputs; each branch stops at the
 * first multiply. Also returns the nodes crossed, and the graph inputs met (the decoder cache).
 */
export function upstreamMultiplies(
  index: GraphIndex,
  start: string,
  byResult: ReadonlyMap<string, WeightMultiply>,
): { hits: UpstreamHit[]; nodes: Set<NodeProto>; graphInputs: Set<string> } {
  const hits = new Map<WeightMultiply, UpstreamHit>();
  const nodes = new Set<NodeProto>();
  const graphInputs = new Set<string>();
  const seen = new Set<string>();
  const stack: { tensor: string; cut?: Cut }[] = [{ tensor: start }];
  while (stack.length > 0) {
    const { tensor, cut } = stack.pop()!;
    const key = `${tensor}\u0000${cut?.output ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const multiply = byResult.get(tensor);
    if (multiply) {
      const hit = hits.get(multiply) ?? { multiply, cuts: [] };
      if (!hit.cuts.some((c) => c?.output === cut?.output)) hit.cuts.push(cut);
      hits.set(multiply, hit);
      continue;
    }
    if (index.isRuntimeInput(tensor)) {
      graphInputs.add(tensor);
      continue;
    }
    const producer = index.producer(tensor);
    if (!producer || SHAPE_OPS.has(producer.opType ?? '') || producer.opType === 'Constant') continue;
    nodes.add(producer);
    // The cut closest to the multiply wins: walking back, a later one replaces an earlier one.
    const next = producer.opType === 'Split' || producer.opType === 'Slice' ? { node: producer, output: tensor } : cut;
    for (const input of dataInputs(producer)) {
      if (!index.isConstant(input)) stack.push({ tensor: input, ...(next ? { cut: next } : {}) });
    }
  }
  for (const hit of hits.values()) {
    const only = hit.cuts.length === 1 ? hit.cuts[0] : undefined;
    if (only?.node.opType === 'Split') {
      hit.splitIndex = only.node.output.indexOf(only.output);
      hit.split = only.node;
    }
  }
  return { hits: [...hits.values()], nodes, graphInputs };
}

/** Follows a tensor forward through pass-through ops to the first consumers of the given kind. */
export function forwardTo(index: GraphIndex, start: string, accept: (node: NodeProto) => boolean, through: ReadonlySet<string>): { found: NodeProto[]; nodes: NodeProto[] } {
  const found: NodeProto[] = [];
  const nodes: NodeProto[] = [];
  const seen = new Set<string>();
  const queue = [start];
  while (queue.length > 0) {
    const tensor = queue.shift()!;
    if (seen.has(tensor)) continue;
    seen.add(tensor);
    for (const consumer of index.consumers(tensor)) {
      if (accept(consumer)) {
        if (!found.includes(consumer)) found.push(consumer);
      } else if (through.has(consumer.opType ?? '')) {
        nodes.push(consumer);
        for (const output of consumer.output) if (output) queue.push(output);
      }
    }
  }
  return { found, nodes };
}

// DynamicQuantizeLinear: in q8 exports the activation is quantized right before MatMulInteger.
export const PASS_THROUGH: ReadonlySet<string> = new Set(['Transpose', 'Reshape', 'Cast', 'Identity', 'Dropout', 'Squeeze', 'Unsqueeze', 'Flatten', 'DynamicQuantizeLinear']);

