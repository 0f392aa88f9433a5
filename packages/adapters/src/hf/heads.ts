/**
 * Task heads: what sits after the last layer (an LM head, the masked-LM head's transform and tied
 * decoder, a pooler, a classifier). They are recognised from the structure, as the layers are:
 * the weight multiplies that no layer claims and that the body's output reaches. A head never
 * feeds a residual Add, so the FFN match never takes it for a layer (see `flowsIntoResidual`), and
 * it is left whole by pruning; its parameters are counted apart.
 */
import { intAttribute, type GraphIndex, type NodeProto } from '@zerolm/onnx';
import type { WeightMultiply } from './match';

/** What a head does, as far as the graph tells. */
export type HeadKind = 'lm' | 'masked-lm' | 'pooler' | 'classifier' | 'other';

export interface HeadMatch {
  readonly kind: HeadKind;
  /** The head's weight multiplies, in graph order. */
  readonly multiplies: readonly WeightMultiply[];
  /** Graph outputs the head produces. */
  readonly outputs: readonly string[];
  /** Initializers only the head reads (weights, biases, norms, quantization parameters). */
  readonly initializers: readonly string[];
}

/** Nodes forward-reachable from `start` (its consumers, theirs, ...). */
function downstream(index: GraphIndex, starts: readonly string[]): Set<NodeProto> {
  const nodes = new Set<NodeProto>();
  const queue = [...starts];
  const seen = new Set<string>(queue);
  while (queue.length > 0) {
    const tensor = queue.shift()!;
    for (const consumer of index.consumers(tensor)) {
      if (nodes.has(consumer)) continue;
      nodes.add(consumer);
      for (const out of consumer.output) {
        if (out && !seen.has(out)) {
          seen.add(out);
          queue.push(out);
        }
      }
    }
  }
  return nodes;
}

/** Nodes `node` reads from, transitively (its whole input cone). */
function upstream(index: GraphIndex, node: NodeProto): Set<NodeProto> {
  const nodes = new Set<NodeProto>();
  const stack = [node];
  while (stack.length > 0) {
    const current = stack.pop()!;
    for (const input of current.input) {
      const producer = input ? index.producer(input) : undefined;
      if (producer && !nodes.has(producer)) {
        nodes.add(producer);
        stack.push(producer);
      }
    }
  }
  return nodes;
}

/** `hidden[:, k]`: a Gather of one position along the sequence axis (a pooler's first token). */
function isTokenGather(index: GraphIndex, node: NodeProto): boolean {
  if (node.opType !== 'Gather' || intAttribute(node, 'axis', 0) !== 1) return false;
  const position = node.input[1] ? index.constantTensor(node.input[1]) : undefined;
  return position !== undefined && position.dims.length === 0 && index.producer(node.input[0] ?? '')?.opType !== 'Shape';
}

function classify(index: GraphIndex, multiplies: readonly WeightMultiply[], region: ReadonlySet<NodeProto>, outputs: readonly string[], hidden: number): HeadKind {
  const ops = new Set([...region].map((n) => n.opType ?? ''));
  const last = multiplies[multiplies.length - 1]!;
  const width = last.weight.shape[1] as number;
  // Gather of one position (token 0) before the first multiply: a pooler, or a classifier on it.
  const first = multiplies[0]!;
  const pooled = [...upstream(index, first.node)].some((n) => isTokenGather(index, n));
  if (pooled) return multiplies.length === 1 && ops.has('Tanh') && width === hidden ? 'pooler' : 'classifier';
  if (width > hidden && outputs.length > 0) return multiplies.length === 1 ? 'lm' : 'masked-lm';
  if (width < hidden) return 'classifier';
  return 'other';
}

/**
 * The heads of a graph: the weight multiplies outside `claimed` (the layers' projections and the
 * embedding-side multiplies before the first layer) downstream of `bodyOutput`, grouped by data
 * flow (a multiply reading another's result joins its head).
 */
export function matchHeads(index: GraphIndex, multiplies: readonly WeightMultiply[], claimed: ReadonlySet<WeightMultiply>, bodyOutput: string, hidden: number): HeadMatch[] {
  const after = downstream(index, [bodyOutput]);
  const candidates = multiplies.filter((m) => !claimed.has(m) && after.has(m.node));
  if (candidates.length === 0) return [];
  // Union-find over candidates: one reaches another through the data flow.
  const parent = new Map<WeightMultiply, WeightMultiply>(candidates.map((m) => [m, m]));
  const root = (m: WeightMultiply): WeightMultiply => {
    let r = m;
    while (parent.get(r) !== r) r = parent.get(r)!;
    return r;
  };
  const reach = new Map(candidates.map((m) => [m, downstream(index, [m.node.output[0] as string])]));
  for (const a of candidates) {
    for (const b of candidates) if (a !== b && reach.get(a)!.has(b.node)) parent.set(root(b), root(a));
  }
  const groups = new Map<WeightMultiply, WeightMultiply[]>();
  for (const m of candidates) {
    const r = root(m);
    groups.set(r, [...(groups.get(r) ?? []), m]);
  }
  const order = new Map(index.topologicalOrder().map((n, i) => [n, i]));
  const heads: HeadMatch[] = [];
  for (const members of groups.values()) {
    members.sort((x, y) => order.get(x.node)! - order.get(y.node)!);
    const region = new Set<NodeProto>();
    for (const m of members) {
      region.add(m.node);
      for (const n of m.weight.path) region.add(n);
      for (const n of reach.get(m)!) region.add(n);
    }
    const outputs = [...region].flatMap((n) => n.output.filter((o) => !!o && index.isGraphOutput(o)));
    // Initializers read inside the region and nowhere else (a tied embedding read by a Gather stays out).
    const initializers = new Set<string>();
    for (const node of region) {
      for (const input of node.input) {
        if (!input || !index.initializer(input)) continue;
        if (index.consumers(input).every((c) => region.has(c))) initializers.add(input);
      }
    }
    heads.push({ kind: classify(index, members, region, outputs, hidden), multiplies: members, outputs, initializers: [...initializers] });
  }
  return heads.sort((x, y) => order.get(x.multiplies[0]!.node)! - order.get(y.multiplies[0]!.node)!);
}
