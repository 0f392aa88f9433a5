/**
 * Attention computed by one onnxruntime (com.microsoft) operator instead of torch.onnx's ops
 * around a Softmax:
 *
 * - `GroupQueryAttention` (onnxruntime-genai's model builder): query, key and value inputs 0-2,
 *   or one packed `[q | k | v]` projection in input 0 with inputs 1 and 2 empty (its head size is
 *   then `width / (num_heads + 2 kv_num_heads)`); the cache in inputs 3-4 and outputs 1-2; rotary
 *   tables in inputs 7-8 (`do_rotary`), or `RotaryEmbedding` nodes on the query and key paths.
 * - `MultiHeadAttention`: query, key, value inputs 0-2, their biases packed `[q | k | v]` in input 3.
 * - `Attention` (onnxruntime's transformer optimizer): the node multiplies its input by the packed
 *   `[q | k | v]` weight itself (input 1, bias input 2; `qkv_hidden_sizes` when the parts differ).
 *
 * The output projection is the weight multiply the operator's output reaches.
 */
import { intAttribute, intsAttribute, type GraphIndex, type NodeProto } from '@zerolm/onnx';
import type { AttentionMatch, FusedAttention } from './match';
import { fail, forwardTo, label, PASS_THROUGH, upstreamMultiplies, type Projection, type UpstreamHit, type WeightMultiply } from './walk';

export const FUSED_ATTENTION_OPS: ReadonlySet<string> = new Set(['GroupQueryAttention', 'MultiHeadAttention', 'Attention']);

const CACHE_INPUT = /^past_key_values\.\d+\.(key|value)$/;

function single(hits: UpstreamHit[], what: string, node: NodeProto): UpstreamHit {
  if (hits.length !== 1) fail(`the ${what} input of ${label(node)} comes from ${hits.length} weight multiplies (expected 1)`);
  return hits[0]!;
}

/** Splits `total` packed columns into q, k and v ranges of the given widths. */
function packedRanges(widths: readonly [number, number, number], total: number, node: NodeProto): Record<'q' | 'k' | 'v', [number, number]> {
  const [q, k, v] = widths;
  if (q + k + v !== total || q <= 0 || k <= 0 || v <= 0) fail(`${label(node)}: cannot cut ${total} packed columns into q, k, v of ${widths.join(', ')}`);
  return { q: [0, q], k: [q, q + k], v: [q + k, total] };
}

function packedProjections(multiply: WeightMultiply, ranges: Record<'q' | 'k' | 'v', [number, number]>): Record<'q' | 'k' | 'v', Projection> {
  return {
    q: { multiply, columns: ranges.q },
    k: { multiply, columns: ranges.k },
    v: { multiply, columns: ranges.v },
  };
}

export function matchFusedAttention(
  index: GraphIndex,
  node: NodeProto,
  byResult: ReadonlyMap<string, WeightMultiply>,
  weightNodes: ReadonlySet<NodeProto>,
): AttentionMatch {
  const op = node.opType ?? '';
  const nodes = new Set<NodeProto>([node]);
  const rotary: { node: NodeProto; role: 'q' | 'k' }[] = [];
  const walk = (input: string | undefined, role: 'q' | 'k' | 'v'): UpstreamHit => {
    if (!input) fail(`${label(node)} has no ${role} input`);
    const result = upstreamMultiplies(index, input, byResult);
    for (const n of result.nodes) {
      nodes.add(n);
      if (n.opType === 'RotaryEmbedding' && role !== 'v') rotary.push({ node: n, role });
    }
    return single(result.hits, role === 'q' ? 'query' : role === 'k' ? 'key' : 'value', node);
  };

  let projections: Record<'q' | 'k' | 'v', Projection>;
  let packedBias: FusedAttention['packedBias'];
  if (op === 'Attention') {
    const multiply = [...byResult.values()].find((m) => m.node === node);
    if (!multiply) fail(`${label(node)}: its packed q/k/v weight is not a constant`);
    const total = multiply.weight.shape[1] as number;
    const sizes = intsAttribute(node, 'qkv_hidden_sizes');
    const widths = (sizes && sizes.length === 3 ? sizes : [total / 3, total / 3, total / 3]) as [number, number, number];
    projections = packedProjections(multiply, packedRanges(widths, total, node));
    if (node.input[4]) fail(`${label(node)}: a packed past state (input 4) is not supported; export with separate past_key_values inputs`);
  } else if (op === 'GroupQueryAttention' && !node.input[1] && !node.input[2]) {
    const hit = walk(node.input[0], 'q');
    const multiply = hit.multiply;
    const total = multiply.weight.shape[1] as number;
    const heads = intAttribute(node, 'num_heads', 0);
    const kvHeads = intAttribute(node, 'kv_num_heads', 0);
    if (heads <= 0 || kvHeads <= 0 || total % (heads + 2 * kvHeads) !== 0) {
      fail(`${label(node)}: ${total} packed columns do not hold ${heads} query and 2 x ${kvHeads} key-value heads`);
    }
    const headSize = total / (heads + 2 * kvHeads);
    projections = packedProjections(multiply, packedRanges([heads * headSize, kvHeads * headSize, kvHeads * headSize], total, node));
  } else {
    const q = walk(node.input[0], 'q');
    const k = walk(node.input[1], 'k');
    const v = walk(node.input[2], 'v');
    for (const [hit, role] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
      if (hit.splitIndex !== undefined) fail(`${label(node)}: its ${role} input is cut from a Split, which fused attention does not take`);
    }
    projections = { q: { multiply: q.multiply }, k: { multiply: k.multiply }, v: { multiply: v.multiply } };
    if (new Set([q.multiply, k.multiply, v.multiply]).size !== 3) fail(`${label(node)}: q, k and v come from one multiply without a packed layout`);
    const bias = op === 'MultiHeadAttention' ? node.input[3] : undefined;
    if (bias) {
      const widths = (['q', 'k', 'v'] as const).map((r) => projections[r].multiply.weight.shape[1] as number) as [number, number, number];
      const length = index.constantTensor(bias)?.dims.reduce((a, b) => a * Number(b), 1);
      if (length === undefined) fail(`${label(node)}: its bias '${bias}' is not a constant`);
      packedBias = { tensor: bias, ranges: packedRanges(widths, length, node) };
    }
  }

  const out = forwardTo(index, node.output[0] as string, (n) => weightNodes.has(n), PASS_THROUGH);
  if (out.found.length !== 1) fail(`the output of ${label(node)} reaches ${out.found.length} output projections (expected 1)`);
  for (const n of out.nodes) nodes.add(n);
  const o = [...byResult.values()].find((m) => m.node === out.found[0])!;

  // The cache: GroupQueryAttention past 3-4 / present 1-2; MultiHeadAttention past 6-7 / present 1-2.
  const pastAt = op === 'GroupQueryAttention' ? 3 : op === 'MultiHeadAttention' ? 6 : -1;
  const cacheName = (name: string | undefined) => (name && CACHE_INPUT.test(name) && index.isRuntimeInput(name) ? name : undefined);
  const pastKey = pastAt >= 0 ? cacheName(node.input[pastAt]) : undefined;
  const pastValue = pastAt >= 0 ? cacheName(node.input[pastAt + 1]) : undefined;
  const present = (i: number) => (node.output[i] && index.isGraphOutput(node.output[i]!) ? node.output[i] : undefined);
  const fused: FusedAttention = { node, op, rotary, ...(packedBias ? { packedBias } : {}) };
  return {
    softmax: node,
    fused,
    ...projections,
    o,
    nodes,
    ...(pastKey ? { pastKey } : {}),
    ...(pastValue ? { pastValue } : {}),
    ...(pastKey && present(1) ? { presentKey: present(1)! } : {}),
    ...(pastValue && present(2) ? { presentValue: present(2)! } : {}),
  };
}
