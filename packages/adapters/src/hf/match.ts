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
import { GraphIndex, intAttribute, type NodeProto } from '@zerolm/onnx';
import { matchHeads, type HeadMatch } from './heads';
import { widthNorm, type WidthNorm } from './width-norms';
import { headBiases, type HeadBias } from './head-bias';
import { asRange, cutColumns } from './packing';
import { FUSED_ATTENTION_OPS, matchFusedAttention } from './match-fused';
import {
  constantOperand,
  dataInputs,
  fail,
  findWeightMultiplies,
  forwardTo,
  label,
  MATMUL_OPS,
  multiplyResult,
  PASS_THROUGH,
  SHAPE_OPS,
  upstreamMultiplies,
  type Projection,
  type UpstreamHit,
  type WeightMultiply,
} from './walk';

export { dataInputs, multiplyResult, SHAPE_OPS, type Projection, type WeightMultiply } from './walk';

/** How an attention block is written: torch.onnx's eager/SDPA ops around a Softmax, or one onnxruntime operator. */
export interface FusedAttention {
  /** The operator (`GroupQueryAttention`, `MultiHeadAttention`, `Attention`) that computes the attention. */
  readonly node: NodeProto;
  readonly op: string;
  /** `RotaryEmbedding` nodes on the query and key paths (their `num_heads`, when set, counts heads). */
  readonly rotary: readonly { readonly node: NodeProto; readonly role: 'q' | 'k' }[];
  /** MultiHeadAttention's packed q|k|v bias (input 3), its elements of q, k and v. */
  readonly packedBias?: { readonly tensor: string; readonly ranges: Readonly<Record<'q' | 'k' | 'v', readonly [number, number]>> };
}

export interface AttentionMatch {
  /** The Softmax of the attention probabilities, or the fused attention operator. */
  readonly softmax: NodeProto;
  /** Set when one onnxruntime operator computes the attention. */
  readonly fused?: FusedAttention;
  readonly q: Projection;
  readonly k: Projection;
  readonly v: Projection;
  readonly o: WeightMultiply;
  /** Nodes between the projections and the output projection (reshapes, transposes, RoPE, ...). */
  readonly nodes: ReadonlySet<NodeProto>;
  /** Per-head biases added to the scores from outside the layer (MPNet's relative position bias). */
  readonly headBiases?: readonly HeadBias[];
  /** Norms over a projection's whole width before the heads are split (OLMo 2's q/k norms). */
  readonly widthNorms?: readonly WidthNorm[];
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
  /** A packed gate-up projection (Phi-3's gate_up_proj, ModernBERT's Wi): the columns of each part, and the nodes cutting them. */
  readonly upColumns?: readonly number[];
  readonly gateColumns?: readonly number[];
  readonly upCut?: NodeProto;
  readonly gateCut?: NodeProto;
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
  /** GPT-NeoX's parallel residual: attention and FFN both read the layer input, their sum is added once. */
  readonly parallel?: boolean;
  /** The residual sums are computed inside Skip*LayerNormalization nodes (the layer cannot be bypassed by rewiring a tensor). */
  readonly fusedResidual?: boolean;
}

export interface GraphMatch {
  readonly layers: LayerMatch[];
  /** Pre-norm (GPT-2, LLaMA) or post-norm (BERT) residual placement. */
  readonly norm: 'pre' | 'post';
  readonly multiplies: readonly WeightMultiply[];
  /** Task heads after the last layer (LM head, masked-LM head, pooler, classifier): never pruned. */
  readonly heads: readonly HeadMatch[];
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
  const biases = headBiases(index, scores, softmax);
  return {
    softmax,
    ...(biases.length > 0 ? { headBiases: biases } : {}),
    q: projection(index, q),
    k: projection(index, k),
    v: projection(index, v),
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

/** The columns one cut takes of a multiply's features, when every path reached it through that one cut. */
function cutOf(index: GraphIndex, hit: UpstreamHit): number[] | undefined {
  const cut = hit.cuts.length === 1 ? hit.cuts[0] : undefined;
  return cut ? cutColumns(index, hit.multiply, cut) : undefined;
}

function projection(index: GraphIndex, hit: UpstreamHit): Projection {
  const split = hit.splitIndex === undefined ? {} : { splitIndex: hit.splitIndex, split: hit.split! };
  const columns = cutOf(index, hit);
  if (!columns) return { multiply: hit.multiply, ...split };
  const range = asRange(columns);
  return { multiply: hit.multiply, ...split, cut: hit.cuts[0]!.node, ...(range ? { columns: range } : { indices: columns }) };
}

const NONLINEAR_OPS = new Set(['Sigmoid', 'Tanh', 'Erf', 'Relu', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'Silu', 'Swish', 'Softplus', 'Elu', 'LeakyRelu', 'HardSigmoid', 'Exp']);

function matchFfn(index: GraphIndex, down: WeightMultiply, byResult: Map<string, WeightMultiply>, attentionMultiplies: ReadonlySet<WeightMultiply>): FfnMatch | undefined {
  const walk = upstreamMultiplies(index, down.node.input[0] as string, byResult);
  const sources = walk.hits.map((h) => h.multiply);
  if (sources.length === 0 || sources.length > 2 || sources.some((m) => attentionMultiplies.has(m) || m === down)) return undefined;
  const packed = sources.length === 1 ? packedGateUp(index, walk.hits[0]!, walk.nodes) : undefined;
  if (packed) return { up: sources[0]!, gate: sources[0]!, down, nodes: walk.nodes, ...packed };
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

/**
 * One multiply reached through two cuts of its features, one going through the nonlinearity
 * alone: a packed gate-up projection (the gate is the part through the activation).
 */
function packedGateUp(index: GraphIndex, hit: UpstreamHit, region: ReadonlySet<NodeProto>): { upColumns: number[]; gateColumns: number[]; upCut: NodeProto; gateCut: NodeProto } | undefined {
  if (hit.cuts.length !== 2 || hit.cuts.some((c) => !c)) return undefined;
  const parts = hit.cuts.map((cut) => ({ cut: cut!, columns: cutColumns(index, hit.multiply, cut!) }));
  if (parts.some((p) => !p.columns)) return undefined;
  const throughNonlinearity = parts.filter(({ cut }) => {
    const reach = forwardTo(index, cut.output, (n) => NONLINEAR_OPS.has(n.opType ?? ''), new Set(['Cast', 'Identity', 'Mul', 'Div', 'Add']));
    return reach.found.length > 0 && reach.found.every((n) => region.has(n));
  });
  if (throughNonlinearity.length !== 1) fail(`cannot tell the gate from the up part of the packed projection ${label(hit.multiply.node)}`);
  const gate = throughNonlinearity[0]!;
  const up = parts.find((p) => p !== gate)!;
  return { upColumns: up.columns!, gateColumns: gate.columns!, upCut: up.cut.node, gateCut: gate.cut.node };
}

/**
 * What may sit between a projection and its residual Add: GPT-2's Conv1D reshapes back to
 * [B, S, C]; a norm of the sublayer's output (OLMo 2, Gemma: decomposed RMSNorm or LayerNorm, or
 * the single op); a constant scale (Granite's residual_multiplier).
 */
const RESIDUAL_PATH: ReadonlySet<string> = new Set([
  'Dropout', 'Identity', 'Cast', 'Reshape',
  'LayerNormalization', 'SimplifiedLayerNormalization', 'Pow', 'ReduceMean', 'Sub', 'Sqrt', 'Div', 'Reciprocal', 'Add', 'Mul',
]);

const SKIP_NORMS: ReadonlySet<string> = new Set(['SkipLayerNormalization', 'SkipSimplifiedLayerNormalization']);

/**
 * Where a sublayer's result joins the residual stream: an Add of two run-time tensors, or an
 * onnxruntime Skip(Simplified)LayerNormalization, which adds its first two inputs and normalises
 * the sum (output 3 is the sum, when written; output 0 the normalised sum).
 */
interface ResidualJoin {
  readonly node: NodeProto;
  /** The residual stream entering (the other operand). */
  readonly input: string;
  /** The sum (the residual stream leaving), when it exists as a tensor. */
  readonly sum?: string;
  /** The normalised sum (Skip*LayerNormalization output 0). */
  readonly normed?: string;
}

function joinsAfter(index: GraphIndex, tensor: string): ResidualJoin[] {
  const found = new Map<NodeProto, ResidualJoin>();
  const seen = new Set<string>([tensor]);
  const queue = [tensor];
  while (queue.length > 0) {
    const current = queue.shift()!;
    for (const consumer of index.consumers(current)) {
      const op = consumer.opType ?? '';
      const slot = consumer.input.indexOf(current);
      if (op === 'Add' && consumer.input.length === 2 && consumer.input.every((i) => !!i && !index.isConstant(i))) {
        if (!found.has(consumer)) found.set(consumer, { node: consumer, input: consumer.input[1 - slot]!, sum: consumer.output[0]! });
        continue;
      }
      if (SKIP_NORMS.has(op) && (slot === 0 || slot === 1)) {
        const sum = consumer.output[3];
        if (!found.has(consumer)) found.set(consumer, { node: consumer, input: consumer.input[1 - slot]!, ...(sum ? { sum } : {}), normed: consumer.output[0]! });
        continue;
      }
      if (!RESIDUAL_PATH.has(op)) continue;
      for (const out of consumer.output) {
        if (out && !seen.has(out)) {
          seen.add(out);
          queue.push(out);
        }
      }
    }
  }
  return [...found.values()];
}

/** The residual join after `tensor`; GPT-NeoX's parallel `Add(mlp, attention)` is looked through by the caller. */
function residualJoin(index: GraphIndex, tensor: string, what: string): ResidualJoin {
  const found = joinsAfter(index, tensor);
  if (found.length !== 1) fail(`${what} does not flow into one residual Add (found ${found.length})`);
  return found[0]!;
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

  const anchors = order.filter((n) => n.opType === 'Softmax' || (FUSED_ATTENTION_OPS.has(n.opType ?? '') && n.domain === 'com.microsoft'));
  if (anchors.length === 0) fail('no Softmax and no fused attention operator: this graph has no attention');
  const attentions = anchors.map((n) => {
    const a = n.opType === 'Softmax' ? matchAttention(index, n, byResult, weightNodes) : matchFusedAttention(index, n, byResult, weightNodes);
    if (a.q.multiply === a.k.multiply) return a;
    const norms = (['q', 'k', 'v'] as const).map((role) => widthNorm(index, a[role].multiply, role)).filter((w): w is WidthNorm => !!w);
    return norms.length > 0 ? { ...a, widthNorms: norms } : a;
  });
  const attentionMultiplies = new Set<WeightMultiply>();
  for (const a of attentions) for (const m of [a.q.multiply, a.k.multiply, a.v.multiply, a.o]) attentionMultiplies.add(m);

  const ffns: FfnMatch[] = [];
  for (const m of multiplies) {
    if (attentionMultiplies.has(m)) continue;
    const ffn = matchFfn(index, m, byResult, attentionMultiplies);
    // A layer's FFN adds its result to the residual stream; a task head (the masked-LM
    // transform and decoder, a pooler and classifier) ends in an output instead.
    if (ffn && joinsAfter(index, multiplyResult(ffn.down)).length > 0) ffns.push(ffn);
  }
  // A multiply consumed as up/gate of one FFN cannot also be a down: keep the outermost chain.
  const asSource = new Set(ffns.flatMap((f) => (f.gate ? [f.up, f.gate] : [f.up])));
  const layersFfn = ffns.filter((f) => !asSource.has(f.down));
  if (layersFfn.length !== attentions.length) {
    fail(`found ${attentions.length} attention blocks but ${layersFfn.length} FFN blocks`);
  }
  layersFfn.sort((a, b) => position.get(a.down.node)! - position.get(b.down.node)!);

  const layers: LayerMatch[] = [];
  const residuals: { input: string; ffn: ResidualJoin; parallel: boolean }[] = [];
  attentions.forEach((attention, i) => {
    const ffn = layersFfn[i]!;
    let attnJoin = residualJoin(index, multiplyResult(attention.o), `the output projection of layer ${i}`);
    let ffnJoin = residualJoin(index, multiplyResult(ffn.down), `the down projection of layer ${i}`);
    // Parallel residual (GPT-NeoX): `Add(mlp, attention)` first, then the residual Add.
    const parallel = attnJoin.node === ffnJoin.node;
    if (parallel) attnJoin = ffnJoin = residualJoin(index, attnJoin.sum!, `the summed sublayers of layer ${i}`);
    else if (!(position.get(attention.o.node)! < position.get(ffn.up.node)!)) fail(`layer ${i}: the FFN does not follow the attention block`);
    residuals.push({ input: attnJoin.input, ffn: ffnJoin, parallel });
  });
  const norm = residuals.length > 1 && residuals[1]!.input !== residuals[0]!.ffn.sum ? 'post' : 'pre';
  attentions.forEach((attention, i) => {
    const r = residuals[i]!;
    const last = i === attentions.length - 1;
    // The last layer of a graph whose final norm is fused with the residual add (onnxruntime
    // genai's SkipSimplifiedLayerNormalization) has no sum tensor: its output is the normalised one.
    const output = !last
      ? residuals[i + 1]!.input
      : norm === 'pre'
        ? (r.ffn.sum ?? r.ffn.normed!)
        : (r.ffn.normed ?? postNormOutput(index, r.ffn.sum!));
    const fusedResidual = SKIP_NORMS.has(r.ffn.node.opType ?? '') || (!last && SKIP_NORMS.has(index.producer(output)?.opType ?? ''));
    layers.push({ index: i, attention, ffn: layersFfn[i]!, input: r.input, output, ...(r.parallel ? { parallel: true } : {}), ...(fusedResidual ? { fusedResidual: true } : {}) });
  });
  const claimed = new Set<WeightMultiply>(attentionMultiplies);
  for (const f of layersFfn) for (const m of [f.up, f.gate, f.down]) if (m) claimed.add(m);
  const hidden = attentions[0]!.o.weight.shape[1] as number;
  const heads = matchHeads(index, multiplies, claimed, layers[layers.length - 1]!.output, hidden);
  return { layers, norm, multiplies, heads };
}

/** Gemm's `transB` and friends are folded into `ResolvedWeight.transposed`; exposed for the exporter. */
export function gemmTransB(node: NodeProto): boolean {
  return node.opType === 'Gemm' && intAttribute(node, 'transB', 0) !== 0;
}
