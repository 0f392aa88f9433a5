/**
 * Per-head biases added to the attention scores from outside the layer: MPNet's (and T5's)
 * relative position bias, gathered from a `[buckets, heads]` table once and added to every
 * layer's `[batch, heads, S, S]` scores. Found structurally: an Add between the score product and
 * the Softmax whose other operand comes (through Expand, Unsqueeze, Transpose, ...) from a Gather
 * of a constant 2-D table. Pruning a layer's heads gives that layer the kept heads of the bias.
 */
import type { GraphIndex, NodeProto } from '@zerolm/onnx';

export interface HeadBias {
  /** The Add of the bias to the scores. */
  readonly add: NodeProto;
  /** The bias tensor it reads, `[batch or 1, heads, S, S]`. */
  readonly operand: string;
  /** The `[buckets, heads]` table it is gathered from. */
  readonly table: string;
}

const MOVES = new Set(['Expand', 'Unsqueeze', 'Transpose', 'Cast', 'Reshape', 'Identity', 'Squeeze']);

function tableBehind(index: GraphIndex, tensor: string): string | undefined {
  let current = tensor;
  for (let guard = 0; guard < 8; guard++) {
    const node = index.producer(current);
    if (!node) return undefined;
    if (node.opType === 'Gather') {
      const table = node.input[0];
      const tensorProto = table ? index.constantTensor(table) : undefined;
      return tensorProto && tensorProto.dims.length === 2 ? table : undefined;
    }
    if (!MOVES.has(node.opType ?? '') || !node.input[0]) return undefined;
    current = node.input[0];
  }
  return undefined;
}

/** The head-indexed biases added between `scores` (the q·k product) and `softmax`. */
export function headBiases(index: GraphIndex, scores: NodeProto, softmax: NodeProto): HeadBias[] {
  const found: HeadBias[] = [];
  let tensor = scores.output[0]!;
  for (let guard = 0; guard < 16 && tensor !== softmax.input[0]; guard++) {
    const next = index.consumers(tensor).find((n) => ['Add', 'Sub', 'Mul', 'Div', 'Tanh', 'Cast', 'Where'].includes(n.opType ?? ''));
    if (!next) break;
    if (next.opType === 'Add') {
      const operand = next.input[0] === tensor ? next.input[1] : next.input[0];
      const table = operand && !index.isConstant(operand) ? tableBehind(index, operand) : undefined;
      if (operand && table) found.push({ add: next, operand, table });
    }
    tensor = next.output[0]!;
  }
  return found;
}
