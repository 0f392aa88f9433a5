/**
 * A read-only index over one GraphProto: who produces and who consumes each tensor, initializers
 * and Constant-node values by name, topological order, forward reachability. Generic on purpose:
 * knowledge of model families lives in the adapters package.
 */
import { findAttribute } from './attributes';
import { OnnxError, OnnxFormatError } from './errors';
import { DataType, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto';
import { decodeTensor, newTensorProto, type DecodeTensorOptions, type TensorArray } from './tensor';

/** What stops a forward walk: op types, or a predicate on the node. */
export type NodeStop = ReadonlySet<string> | readonly string[] | ((node: NodeProto) => boolean);

export interface ForwardWalk {
  /** Nodes visited before any stop, in breadth-first order (stop nodes excluded). */
  readonly visited: NodeProto[];
  /** The stop nodes reached, in the order first reached. */
  readonly stops: NodeProto[];
}

function stopPredicate(stop: NodeStop): (node: NodeProto) => boolean {
  if (typeof stop === 'function') return stop;
  const ops = stop instanceof Set ? stop : new Set(stop as readonly string[]);
  return (node) => ops.has(node.opType ?? '');
}

export class GraphIndex {
  readonly graph: GraphProto;
  private readonly producers = new Map<string, NodeProto>();
  private readonly consumerLists = new Map<string, NodeProto[]>();
  private readonly initializers = new Map<string, TensorProto>();
  private readonly inputs = new Map<string, ValueInfoProto>();
  private readonly positions = new Map<NodeProto, number>();
  private readonly constantTensors = new Map<string, TensorProto | null>();

  constructor(graph: GraphProto) {
    this.graph = graph;
    graph.node.forEach((node, position) => {
      this.positions.set(node, position);
      for (const output of node.output) if (output) this.producers.set(output, node);
      for (const input of node.input) {
        if (!input) continue;
        const list = this.consumerLists.get(input);
        if (list) {
          if (list[list.length - 1] !== node) list.push(node);
        } else this.consumerLists.set(input, [node]);
      }
    });
    for (const tensor of graph.initializer) if (tensor.name) this.initializers.set(tensor.name, tensor);
    for (const input of graph.input) if (input.name) this.inputs.set(input.name, input);
  }

  /** The node that outputs `name`, if any (graph inputs and initializers have none). */
  producer(name: string): NodeProto | undefined {
    return this.producers.get(name);
  }

  /** Nodes reading `name`, in graph order, each once. */
  consumers(name: string): readonly NodeProto[] {
    return this.consumerLists.get(name) ?? [];
  }

  initializer(name: string): TensorProto | undefined {
    return this.initializers.get(name);
  }

  /** A graph input that no initializer overrides (a real runtime input). */
  isRuntimeInput(name: string): boolean {
    return this.inputs.has(name) && !this.initializers.has(name);
  }

  isGraphOutput(name: string): boolean {
    return this.graph.output.some((o) => o.name === name);
  }

  /** Position of a node in `graph.node`. */
  position(node: NodeProto): number {
    const position = this.positions.get(node);
    if (position === undefined) throw new OnnxError(`node '${node.name ?? ''}' is not part of graph '${this.graph.name ?? ''}'`);
    return position;
  }

  nodesOfType(opType: string): NodeProto[] {
    return this.graph.node.filter((n) => n.opType === opType);
  }

  /**
   * The constant tensor behind `name`: an initializer, the value of a Constant node (its `value`
   * tensor, or `value_float(s)` / `value_int(s)` turned into a tensor), or either of them passed on
   * by `Identity` nodes (torch.onnx hands deduplicated parameters to their other users that way:
   * `Identity(encoder.layer.0...bias) -> encoder.layer.1...bias`). `undefined` when the value is
   * computed at run time. The tensor keeps the source's name; `initializer(name)` stays exact.
   */
  constantTensor(name: string): TensorProto | undefined {
    const initializer = this.initializers.get(name);
    if (initializer) return initializer;
    if (!this.constantTensors.has(name)) this.constantTensors.set(name, this.constantNodeTensor(name) ?? null);
    return this.constantTensors.get(name) ?? undefined;
  }

  /** Whether `name` is an initializer or the output of a Constant node. */
  isConstant(name: string): boolean {
    return this.constantTensor(name) !== undefined;
  }

  /** The decoded value of `constantTensor(name)`; int64 as numbers unless asked otherwise. */
  constantValue(name: string, options: DecodeTensorOptions = {}): TensorArray | undefined {
    const tensor = this.constantTensor(name);
    return tensor && decodeTensor(tensor, { int64: 'number', ...options });
  }

  private constantNodeTensor(name: string): TensorProto | undefined {
    const node = this.producers.get(name);
    if (node?.opType === 'Identity' && (node.domain ?? '') === '' && node.input[0]) return this.constantTensor(node.input[0]);
    if (!node || node.opType !== 'Constant' || (node.domain ?? '') !== '') return undefined;
    const value = findAttribute(node, 'value');
    if (value?.t) return value.t;
    const floatValue = findAttribute(node, 'value_float');
    if (floatValue?.f !== undefined) return newTensorProto({ name, dataType: DataType.FLOAT, floatData: [floatValue.f] });
    const floatsValue = findAttribute(node, 'value_floats');
    if (floatsValue) {
      return newTensorProto({ name, dataType: DataType.FLOAT, dims: [floatsValue.floats.length], floatData: [...floatsValue.floats] });
    }
    const intValue = findAttribute(node, 'value_int');
    if (intValue?.i !== undefined) return newTensorProto({ name, dataType: DataType.INT64, int64Data: [intValue.i] });
    const intsValue = findAttribute(node, 'value_ints');
    if (intsValue) {
      return newTensorProto({ name, dataType: DataType.INT64, dims: [intsValue.ints.length], int64Data: [...intsValue.ints] });
    }
    return undefined;
  }

  /**
   * The nodes in an order where every node comes after the producers of its inputs (Kahn's
   * algorithm, ties kept in graph order). Throws `OnnxFormatError` on a cycle.
   */
  topologicalOrder(): NodeProto[] {
    const nodes = this.graph.node;
    const pending: number[] = nodes.map((node) => {
      const producers = new Set<NodeProto>();
      for (const input of node.input) {
        const producer = input ? this.producers.get(input) : undefined;
        if (producer && producer !== node) producers.add(producer);
      }
      return producers.size;
    });
    // Smallest graph position first, so an already sorted graph keeps its order.
    const ready = new MinHeap();
    pending.forEach((count, position) => count === 0 && ready.push(position));
    const order: NodeProto[] = [];
    while (ready.size > 0) {
      const node = nodes[ready.pop()] as NodeProto;
      order.push(node);
      const successors = new Set<NodeProto>();
      for (const output of node.output) for (const consumer of this.consumers(output)) successors.add(consumer);
      successors.delete(node);
      for (const successor of successors) {
        const position = this.position(successor);
        pending[position] = (pending[position] as number) - 1;
        if (pending[position] === 0) ready.push(position);
      }
    }
    if (order.length !== nodes.length) {
      const ordered = new Set(order);
      const stuck = nodes.find((n) => !ordered.has(n));
      throw new OnnxFormatError(
        `graph '${this.graph.name ?? ''}' has a cycle (through ${stuck?.opType ?? '?'} node '${stuck?.name ?? ''}')`,
      );
    }
    return order;
  }

  /**
   * Walks forward from tensor `start` through its consumers, breadth first, without passing
   * through nodes matching `stop` (e.g. the next MatMul, or a residual Add). Each node is
   * visited once.
   */
  walkForward(start: string, stop: NodeStop): ForwardWalk {
    const isStop = stopPredicate(stop);
    const seen = new Set<NodeProto>();
    const visited: NodeProto[] = [];
    const stops: NodeProto[] = [];
    let frontier: readonly NodeProto[] = this.consumers(start);
    while (frontier.length > 0) {
      const next: NodeProto[] = [];
      for (const node of frontier) {
        if (seen.has(node)) continue;
        seen.add(node);
        if (isStop(node)) {
          stops.push(node);
          continue;
        }
        visited.push(node);
        for (const output of node.output) if (output) next.push(...this.consumers(output));
      }
      frontier = next;
    }
    return { visited, stops };
  }

  /** Every tensor name reachable forward from `start` (inclusive) without passing `stop` nodes. */
  reachableTensors(start: string, stop: NodeStop = () => false): Set<string> {
    const names = new Set<string>([start]);
    for (const node of this.walkForward(start, stop).visited) for (const output of node.output) if (output) names.add(output);
    return names;
  }
}

/** A binary min-heap of integers. */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const items = this.items;
    items.push(value);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((items[parent] as number) <= value) break;
      items[i] = items[parent] as number;
      i = parent;
    }
    items[i] = value;
  }

  pop(): number {
    const items = this.items;
    const top = items[0] as number;
    const last = items.pop() as number;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= items.length) break;
        const right = left + 1;
        const child = right < items.length && (items[right] as number) < (items[left] as number) ? right : left;
        if ((items[child] as number) >= last) break;
        items[i] = items[child] as number;
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}
