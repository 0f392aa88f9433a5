/**
 * Finds the Attention and FFN modules of a transformer in an ONNX graph from its structure, not
 * its names: real exports (optimum, torch.onnx) name most weights `onnx::MatMul_1234`.
 *
 * - A weight multiply is a MatMul / Gemm / MatMulInteger (and the contrib variants) whose right
 *   operand resolves to a constant (float, fp16 or quantized).
 * - Attention: every Softmax is an attention-probability node. Walking back from it over data
 *   inputs (never shape inputs) finds the score MatMul (two run-time operands); its left operand
 *   leads back to the query projection, its right one to the key projection; the MatMul that
 *   reads the probabilities leads back to the value projection; walking forward from that MatMul
 *   reaches the output projection. A fused projection (GPT-2 `c_attn`) is reached three times,
 *   through the outputs of one Split: output i is q, k, v.
 * - FFN: a weight multiply (not attention) whose input, walked back through element-wise ops,
 *   comes from one (up) or two (gate and up) other weight multiplies; the gate is the one that
 *   goes through the nonlinearity alone.
 * - The residual Adds after the output and down projections give the layer boundaries.
 */
import {
  GraphIndex,
  intAttribute,
  OnnxError,
  resolveMatMulWeight,
  type NodeProto,
  type ResolvedWeight,
} from '@zerolm/onnx';
import { matchHeads, type HeadMatch } from './heads';

const MATMUL_OPS = new Set(['MatMul', 'Gemm', 'MatMulInteger', 'MatMulIntegerToFloat', 'DynamicQuantizeMatMul', 'MatMulNBits']);

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
};

/** A weight multiply: the MatMul-like node, its weight, and the float tensor it produces. */
export interface WeightMultiply {
  readonly node: NodeProto;
  readonly weight: ResolvedWeight;
  /** The float result: the node's output, or (MatMulInteger) the output of the Mul by the scales. */
  readonly output: string;
  /** The Add of a constant bias right after (or, for Gemm, the Gemm itself with its C input). */
  readonly bias?: { readonly add: NodeProto; readonly tensor: string; readonly output: string };
}

/** Where the output of a multiply ends after its bias. */
export function multiplyResult(m: WeightMultiply): string {
  return m.bias ? m.bias.output : m.output;
}

/** A projection: a weight multiply and, for fused q/k/v, which part of its output columns. */
export interface Projection {
  readonly multiply: WeightMultiply;
  /** Index of the Split output that carries this projection (fused QKV); absent when unfused. */
  readonly splitIndex?: number;
  /** The Split node of a fused projection. */
  readonly split?: NodeProto;
}

export interface AttentionMatch {
  readonly softmax: NodeProto;
  readonly q: Projection;
  readonly k: Projection;
  readonly v: Projection;
  readonly o: WeightMultiply;
  /** Nodes between the projections and the output projection (reshapes, transposes, RoPE, ...). */
  readonly nodes: ReadonlySet<NodeProto>;
  /** Decoder cache tensors of this layer (graph input / output names). */
  readonly pastKey?: string;
  readonly pastValue?: string;
  readonly presentKey?: string;
  readonly presentValue?: string;
}

export interface FfnMatch {
  readonly up: WeightMultiply;
  readonly gate?: WeightMultiply;
  readonly down: WeightMultiply;
  /** Nodes between up/gate and down (the activation). */
  readonly nodes: ReadonlySet<NodeProto>;
}

export interface LayerMatch {
  readonly index: number;
  readonly attention: AttentionMatch;
  readonly ffn: FfnMatch;
  /** The residual-stream tensor entering the layer. */
  readonly input: string;
  /** The residual-stream tensor leaving the layer (the next layer's input). */
  readonly output: string;
}

export interface GraphMatch {
  readonly layers: LayerMatch[];
  /** Pre-norm (GPT-2, LLaMA) or post-norm (BERT) residual placement. */
  readonly norm: 'pre' | 'post';
  readonly multiplies: readonly WeightMultiply[];
  /** Task heads after the last layer (LM head, masked-LM head, pooler, classifier): never pruned. */
  readonly heads: readonly HeadMatch[];
}

class MatchError extends OnnxError {}

function fail(message: string): never {
  throw new MatchError(`cannot map the graph to Attention/FFN modules: ${message}`);
}

function label(node: NodeProto): string {
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
function constantOperand(index: GraphIndex, node: NodeProto): string | undefined {
  const [a, b] = node.input;
  const ca = !!a && index.isConstant(a);
  const cb = !!b && index.isConstant(b);
  if (ca === cb) return undefined;
  return ca ? a : b;
}

function findWeightMultiplies(index: GraphIndex, baseDir: string): WeightMultiply[] {
  const found: WeightMultiply[] = [];
  for (const node of index.graph.node) {
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
    const add = index.consumers(output).find((c) => c.opType === 'Add' && c.input.length === 2);
    const biasTensor = add && constantOperand(index, add);
    const biasLength = biasTensor ? index.constantTensor(biasTensor)?.dims.reduce((a, b) => a * Number(b), 1) : undefined;
    const bias =
      add && biasTensor && biasLength === cols && index.consumers(output).length === 1
        ? { add, tensor: biasTensor, output: add.output[0] as string }
        : undefined;
    found.push(bias ? { node, weight, output, bias } : { node, weight, output });
  }
  return found;
}

interface UpstreamHit {
  multiply: WeightMultiply;
  splitIndex?: number;
  split?: NodeProto;
}

/**
 * Weight multiplies reached walking back from `start` over data inputs; each branch stops at the
 * first multiply. Also returns the nodes crossed, and the graph inputs met (the decoder cache).
 */
function upstreamMultiplies(
  index: GraphIndex,
  start: string,
  byResult: ReadonlyMap<string, WeightMultiply>,
): { hits: UpstreamHit[]; nodes: Set<NodeProto>; graphInputs: Set<string> } {
  const hits = new Map<WeightMultiply, UpstreamHit>();
  const nodes = new Set<NodeProto>();
  const graphInputs = new Set<string>();
  const seen = new Set<string>();
  const stack: { tensor: string; splitIndex?: number; split?: NodeProto }[] = [{ tensor: start }];
  while (stack.length > 0) {
    const { tensor, splitIndex, split } = stack.pop()!;
    if (seen.has(tensor)) continue;
    seen.add(tensor);
    const multiply = byResult.get(tensor);
    if (multiply) {
      const previous = hits.get(multiply);
      if (previous && previous.splitIndex !== splitIndex) fail(`${label(multiply.node)} feeds one attention input through two different Split outputs`);
      hits.set(multiply, { multiply, ...(splitIndex === undefined ? {} : { splitIndex, split: split! }) });
      continue;
    }
    if (index.isRuntimeInput(tensor)) {
      graphInputs.add(tensor);
      continue;
    }
    const producer = index.producer(tensor);
    if (!producer || SHAPE_OPS.has(producer.opType ?? '') || producer.opType === 'Constant') continue;
    if (MATMUL_OPS.has(producer.opType ?? '') && !byResult.has(tensor)) {
      // A multiply of two activations (e.g. scores @ V of another block): not on a projection path.
      nodes.add(producer);
    }
    nodes.add(producer);
    let nextSplit = splitIndex;
    let nextSplitNode = split;
    if (producer.opType === 'Split') {
      nextSplit = producer.output.indexOf(tensor);
      nextSplitNode = producer;
    }
    for (const input of dataInputs(producer)) {
      if (!index.isConstant(input)) stack.push({ tensor: input, ...(nextSplit === undefined ? {} : { splitIndex: nextSplit, split: nextSplitNode! }) });
    }
  }
  return { hits: [...hits.values()], nodes, graphInputs };
}

/** The MatMul of two run-time operands reached walking back from the Softmax input. */
function scoreMatMul(index: GraphIndex, softmax: NodeProto, weightNodes: ReadonlySet<NodeProto>): NodeProto {
  const seen = new Set<string>();
  const stack = [softmax.input[0] as string];
  const found = new Set<NodeProto>();
  while (stack.length > 0) {
    const tensor = stack.pop()!;
    if (seen.has(tensor)) continue;
    seen.add(tensor);
    const producer = index.producer(tensor);
    if (!producer || SHAPE_OPS.has(producer.opType ?? '')) continue;
    if (producer.opType === 'MatMul' && !weightNodes.has(producer)) {
      found.add(producer);
      continue;
    }
    if (MATMUL_OPS.has(producer.opType ?? '')) continue;
    for (const input of dataInputs(producer)) if (!index.isConstant(input)) stack.push(input);
  }
  if (found.size !== 1) fail(`${label(softmax)} is fed by ${found.size} query-key products (expected 1)`);
  return [...found][0]!;
}

function onlyHit(hits: UpstreamHit[], what: string, softmax: NodeProto): UpstreamHit {
  if (hits.length !== 1) {
    fail(`the ${what} input of the attention at ${label(softmax)} comes from ${hits.length} weight multiplies (expected 1)`);
  }
  return hits[0]!;
}

/** Follows a tensor forward through pass-through ops to the first consumers of the given kind. */
function forwardTo(index: GraphIndex, start: string, accept: (node: NodeProto) => boolean, through: ReadonlySet<string>): { found: NodeProto[]; nodes: NodeProto[] } {
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
const PASS_THROUGH = new Set(['Transpose', 'Reshape', 'Cast', 'Identity', 'Dropout', 'Squeeze', 'Unsqueeze', 'Flatten', 'DynamicQuantizeLinear']);

function matchAttention(index: GraphIndex, softmax: NodeProto, byResult: Map<string, WeightMultiply>, weightNodes: Set<NodeProto>): AttentionMatch {
  const scores = scoreMatMul(index, softmax, weightNodes);
  const queryWalk = upstreamMultiplies(index, scores.input[0] as string, byResult);
  const keyWalk = upstreamMultiplies(index, scores.input[1] as string, byResult);
  const probs = forwardTo(index, softmax.output[0] as string, (n) => n.opType === 'MatMul' && !weightNodes.has(n), PASS_THROUGH);
  if (probs.found.length !== 1) fail(`the probabilities of ${label(softmax)} are multiplied by ${probs.found.length} value tensors (expected 1)`);
  const pv = probs.found[0]!;
  const valueWalk = upstreamMultiplies(index, pv.input[1] as string, byResult);
  const out = forwardTo(index, pv.output[0] as string, (n) => weightNodes.has(n), PASS_THROUGH);
  if (out.found.length !== 1) fail(`the attention output of ${label(softmax)} reaches ${out.found.length} output projections (expected 1)`);
  const o = [...byResult.values()].find((m) => m.node === out.found[0])!;
  const q = onlyHit(queryWalk.hits, 'query', softmax);
  const k = onlyHit(keyWalk.hits, 'key', softmax);
  const v = onlyHit(valueWalk.hits, 'value', softmax);
  const nodes = new Set<NodeProto>([...queryWalk.nodes, ...keyWalk.nodes, ...valueWalk.nodes, scores, softmax, pv, ...probs.nodes, ...out.nodes]);
  const cache = (walk: { graphInputs: Set<string> }, kind: 'key' | 'value'): { past?: string; present?: string } => {
    const past = [...walk.graphInputs].find((name) => /^past_key_values\.\d+\.(key|value)$/.test(name) && name.endsWith(`.${kind}`));
    if (!past) return {};
    // fp16 files written with keep_io_types cast the cache on its way in and out.
    const concat = castChain(index, past)
      .flatMap((t) => index.consumers(t))
      .find((c) => c.opType === 'Concat');
    const present = concat?.output[0] ? castChain(index, concat.output[0]).find((t) => index.isGraphOutput(t)) : undefined;
    return { past, ...(present ? { present } : {}) };
  };
  const keyCache = cache(keyWalk, 'key');
  const valueCache = cache(valueWalk, 'value');
  return {
    softmax,
    q: projection(q),
    k: projection(k),
    v: projection(v),
    o,
    nodes,
    ...(keyCache.past ? { pastKey: keyCache.past } : {}),
    ...(valueCache.past ? { pastValue: valueCache.past } : {}),
    ...(keyCache.present ? { presentKey: keyCache.present } : {}),
    ...(valueCache.present ? { presentValue: valueCache.present } : {}),
  };
}

/** `tensor` and the outputs of the Cast / Identity nodes that pass it on unchanged in shape. */
function castChain(index: GraphIndex, tensor: string): string[] {
  const out = [tensor];
  for (let i = 0; i < out.length && out.length < 8; i++) {
    for (const consumer of index.consumers(out[i]!)) {
      if ((consumer.opType === 'Cast' || consumer.opType === 'Identity') && consumer.output[0]) out.push(consumer.output[0]);
    }
  }
  return out;
}

function projection(hit: UpstreamHit): Projection {
  return hit.splitIndex === undefined ? { multiply: hit.multiply } : { multiply: hit.multiply, splitIndex: hit.splitIndex, split: hit.split! };
}

const NONLINEAR_OPS = new Set(['Sigmoid', 'Tanh', 'Erf', 'Relu', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'Silu', 'Swish', 'Softplus', 'Elu', 'LeakyRelu', 'HardSigmoid', 'Exp']);

function matchFfn(index: GraphIndex, down: WeightMultiply, byResult: Map<string, WeightMultiply>, attentionMultiplies: ReadonlySet<WeightMultiply>): FfnMatch | undefined {
  const walk = upstreamMultiplies(index, down.node.input[0] as string, byResult);
  const sources = walk.hits.map((h) => h.multiply);
  if (sources.length === 0 || sources.length > 2 || sources.some((m) => attentionMultiplies.has(m) || m === down)) return undefined;
  // The activation between the projections works per token: nothing that mixes positions or
  // heads (a Reshape may only flatten tokens, as around GPT-2's Conv1D Gemm).
  for (const node of walk.nodes) if (['Transpose', 'Softmax', 'Concat', 'Split', 'Gather'].includes(node.opType ?? '')) return undefined;
  if (![...walk.nodes].some((n) => NONLINEAR_OPS.has(n.opType ?? '') || n.opType === 'Mul')) return undefined;
  if (sources.length === 1) return { up: sources[0]!, down, nodes: walk.nodes };
  // Gate: the projection whose result goes through a nonlinearity; up enters the product directly.
  const throughNonlinearity = sources.filter((m) => {
    const reach = forwardTo(index, multiplyResult(m), (n) => NONLINEAR_OPS.has(n.opType ?? ''), new Set(['Cast', 'Identity', 'Mul', 'Div', 'Add']));
    return reach.found.length > 0 && [...reach.found].every((n) => walk.nodes.has(n));
  });
  if (throughNonlinearity.length !== 1) fail(`cannot tell the gate from the up projection feeding ${label(down.node)}`);
  const gate = throughNonlinearity[0]!;
  const up = sources.find((m) => m !== gate)!;
  return { up, gate, down, nodes: walk.nodes };
}

/** What may sit between a projection and its residual Add (GPT-2's Conv1D reshapes back to [B, S, C]). */
const RESIDUAL_PATH: ReadonlySet<string> = new Set(['Dropout', 'Identity', 'Cast', 'Reshape']);

/** The Adds after `tensor` that add another run-time tensor (residual connections). */
function residualAdds(index: GraphIndex, tensor: string): NodeProto[] {
  return forwardTo(index, tensor, (n) => n.opType === 'Add' && n.input.every((i) => !!i && !index.isConstant(i)), RESIDUAL_PATH).found;
}

/** The first Add after `tensor` that adds another run-time tensor (the residual connection). */
function residualAdd(index: GraphIndex, tensor: string, what: string): NodeProto {
  const found = residualAdds(index, tensor);
  if (found.length !== 1) fail(`${what} does not flow into one residual Add (found ${found.length})`);
  return found[0]!;
}

function otherInput(node: NodeProto, tensor: string): string {
  const other = node.input[0] === tensor ? node.input[1] : node.input[0];
  if (!other) fail(`${label(node)} has a missing input`);
  return other;
}

/** The tensor a post-norm layer ends with: the output of the norm after the residual Add. */
function postNormOutput(index: GraphIndex, residual: string): string {
  const seen = new Set<string>();
  const queue = [residual];
  while (queue.length > 0) {
    const tensor = queue.shift()!;
    if (seen.has(tensor)) continue;
    seen.add(tensor);
    for (const consumer of index.consumers(tensor)) {
      const op = consumer.opType ?? '';
      const out = consumer.output[0];
      if (!out) continue;
      if (op === 'LayerNormalization' || op === 'SkipLayerNormalization' || op === 'SimplifiedLayerNormalization') return out;
      // A decomposed LayerNorm ends with `Add(beta)`: a constant operand after the normalisation.
      if (op === 'Add' && constantOperand(index, consumer) && tensor !== residual) return out;
      if (['ReduceMean', 'Sub', 'Pow', 'Add', 'Sqrt', 'Div', 'Mul', 'Cast'].includes(op)) queue.push(out);
    }
  }
  return fail('cannot find the LayerNorm that ends the last post-norm layer');
}

export function matchGraph(index: GraphIndex, baseDir: string): GraphMatch {
  const multiplies = findWeightMultiplies(index, baseDir);
  const byResult = new Map<string, WeightMultiply>();
  for (const m of multiplies) byResult.set(multiplyResult(m), m);
  // A multiply whose bias Add is skipped by a walk is still found by its raw output.
  for (const m of multiplies) if (m.bias) byResult.set(m.output, m);
  const weightNodes = new Set(multiplies.map((m) => m.node));
  const order = index.topologicalOrder();
  const position = new Map(order.map((n, i) => [n, i]));

  const softmaxes = order.filter((n) => n.opType === 'Softmax');
  if (softmaxes.length === 0) fail('no Softmax: this graph has no attention');
  const attentions = softmaxes.map((s) => matchAttention(index, s, byResult, weightNodes));
  const attentionMultiplies = new Set<WeightMultiply>();
  for (const a of attentions) for (const m of [a.q.multiply, a.k.multiply, a.v.multiply, a.o]) attentionMultiplies.add(m);

  const ffns: FfnMatch[] = [];
  for (const m of multiplies) {
    if (attentionMultiplies.has(m)) continue;
    const ffn = matchFfn(index, m, byResult, attentionMultiplies);
    // A layer's FFN adds its result to the residual stream; a task head (the masked-LM
    // transform and decoder, a pooler and classifier) ends in an output instead.
    if (ffn && residualAdds(index, multiplyResult(ffn.down)).length > 0) ffns.push(ffn);
  }
  // A multiply consumed as up/gate of one FFN cannot also be a down: keep the outermost chain.
  const asSource = new Set(ffns.flatMap((f) => (f.gate ? [f.up, f.gate] : [f.up])));
  const layersFfn = ffns.filter((f) => !asSource.has(f.down));
  if (layersFfn.length !== attentions.length) {
    fail(`found ${attentions.length} attention blocks but ${layersFfn.length} FFN blocks`);
  }
  layersFfn.sort((a, b) => position.get(a.down.node)! - position.get(b.down.node)!);

  const layers: LayerMatch[] = [];
  const residuals: { input: string; ffnResidual: string }[] = [];
  attentions.forEach((attention, i) => {
    const ffn = layersFfn[i]!;
    if (!(position.get(attention.o.node)! < position.get(ffn.up.node)!)) {
      fail(`layer ${i}: the FFN does not follow the attention block`);
    }
    const attnAdd = residualAdd(index, multiplyResult(attention.o), `the output projection of layer ${i}`);
    const input = otherInput(attnAdd, forwardChainTensor(index, multiplyResult(attention.o), attnAdd));
    const ffnAdd = residualAdd(index, multiplyResult(ffn.down), `the down projection of layer ${i}`);
    residuals.push({ input, ffnResidual: ffnAdd.output[0] as string });
  });
  const norm = residuals.length > 1 && residuals[1]!.input !== residuals[0]!.ffnResidual ? 'post' : 'pre';
  attentions.forEach((attention, i) => {
    const last = i === attentions.length - 1;
    const output = !last
      ? residuals[i + 1]!.input
      : norm === 'pre'
        ? residuals[i]!.ffnResidual
        : postNormOutput(index, residuals[i]!.ffnResidual);
    layers.push({ index: i, attention, ffn: layersFfn[i]!, input: residuals[i]!.input, output });
  });
  const claimed = new Set<WeightMultiply>(attentionMultiplies);
  for (const f of layersFfn) for (const m of [f.up, f.gate, f.down]) if (m) claimed.add(m);
  const hidden = attentions[0]!.o.weight.shape[1] as number;
  const heads = matchHeads(index, multiplies, claimed, layers[layers.length - 1]!.output, hidden);
  return { layers, norm, multiplies, heads };
}

/** The operand of `add` that descends from `tensor` (through dropout/identity). */
function forwardChainTensor(index: GraphIndex, tensor: string, add: NodeProto): string {
  let current = tensor;
  for (let guard = 0; guard < 8; guard++) {
    if (add.input.includes(current)) return current;
    const next = index.consumers(current).find((c) => RESIDUAL_PATH.has(c.opType ?? ''));
    if (!next) break;
    current = next.output[0] as string;
  }
  return fail(`cannot follow ${tensor} into its residual Add`);
}

/** Gemm's `transB` and friends are folded into `ResolvedWeight.transposed`; exposed for the exporter. */
export function gemmTransB(node: NodeProto): boolean {
  return node.opType === 'Gemm' && intAttribute(node, 'transB', 0) !== 0;
}
