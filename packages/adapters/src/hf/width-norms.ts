/**
 * Norms over a projection's whole output, before it is split into heads (OLMo 2's q_norm and
 * k_norm: RMSNorm over `heads * head_dim`). Removing heads cuts their weight and changes their
 * statistic: the exporter slices the weight with the projection and keeps the divisor (see
 * packages/export). Found structurally: the elementwise chain between a projection's result and
 * the first op that moves its features (Reshape, Transpose, Split, Slice, a multiply).
 */
import type { GraphIndex, NodeProto } from '@zerolm/onnx';
import { constantOperand, type WeightMultiply } from './walk';
import { multiplyResult } from './walk';

export interface WidthNorm {
  readonly role: 'q' | 'k' | 'v';
  /** `rms`: Pow, ReduceMean, Add(eps), Sqrt, Div/Reciprocal, Mul(x, .), Mul(weight); `layer`: with the mean subtracted. */
  readonly kind: 'rms' | 'layer';
  /** The constant vectors (weight, bias) as wide as the projection, and the node reading each. */
  readonly vectors: readonly { readonly tensor: string; readonly reader: NodeProto }[];
  /** The constant added to the mean of squares (epsilon), and its reader. */
  readonly epsilon?: { readonly tensor: string; readonly reader: NodeProto };
  /** Width of the statistic (the projection's output features). */
  readonly width: number;
}

const ELEMENTWISE = new Set(['Pow', 'ReduceMean', 'Add', 'Sub', 'Sqrt', 'Div', 'Reciprocal', 'Mul', 'Cast']);

function elementCount(index: GraphIndex, name: string): number {
  return index.constantTensor(name)!.dims.reduce((a, b) => a * Number(b), 1);
}

/** The norm over the whole width of `multiply`'s result, if one sits right after it. */
export function widthNorm(index: GraphIndex, multiply: WeightMultiply, role: 'q' | 'k' | 'v'): WidthNorm | undefined {
  const width = multiply.weight.shape[1] as number;
  const start = multiplyResult(multiply);
  const nodes = new Set<NodeProto>();
  const seen = new Set<string>([start]);
  const queue = [start];
  while (queue.length > 0) {
    const tensor = queue.shift()!;
    for (const consumer of index.consumers(tensor)) {
      if (nodes.has(consumer) || !ELEMENTWISE.has(consumer.opType ?? '')) continue;
      nodes.add(consumer);
      for (const out of consumer.output) if (out && !seen.has(out)) (seen.add(out), queue.push(out));
    }
  }
  const reduces = [...nodes].filter((n) => n.opType === 'ReduceMean');
  if (reduces.length === 0) return undefined;
  const kind = [...nodes].some((n) => n.opType === 'Sub') ? 'layer' : 'rms';
  const vectors: { tensor: string; reader: NodeProto }[] = [];
  let epsilon: WidthNorm['epsilon'];
  for (const node of nodes) {
    const constant = node.input.length === 2 ? constantOperand(index, node) : undefined;
    if (!constant) continue;
    const count = elementCount(index, constant);
    if ((node.opType === 'Mul' || node.opType === 'Add') && count === width) vectors.push({ tensor: constant, reader: node });
    // eps: the scalar added to a ReduceMean's result.
    if (node.opType === 'Add' && count === 1 && reduces.some((r) => node.input.includes(r.output[0]!))) epsilon = { tensor: constant, reader: node };
  }
  if (vectors.length === 0) return undefined;
  return { role, kind, vectors, width, ...(epsilon ? { epsilon } : {}) };
}
