/**
 * Edits of one ONNX graph, decided against the graph as it was loaded (`index`) and applied to
 * the graph object: constants replaced for some of their readers only (a constant that another
 * node still reads is cloned, never changed under it), nodes inserted next to an anchor, tensors
 * renamed, and dead nodes and initializers removed at the end.
 */
import { GraphIndex, makeValueInfo, type GraphProto, type NodeProto, type TensorProto } from '@zerolm/onnx';

export class GraphEditor {
  readonly graph: GraphProto;
  /** The graph as loaded; consumer lists stay those of the original (decisions are conservative). */
  readonly index: GraphIndex;
  private readonly used = new Set<string>();
  private readonly replacedInPlace = new Set<string>();
  private readonly insertions = new Map<NodeProto, { before: NodeProto[]; after: NodeProto[] }>();
  /** Models before IR 4 list every initializer among the graph inputs too. */
  private readonly initializersAreInputs: boolean;

  constructor(graph: GraphProto, index: GraphIndex, irVersion: number) {
    this.graph = graph;
    this.index = index;
    this.initializersAreInputs = irVersion < 4;
    for (const node of graph.node) {
      for (const name of [...node.input, ...node.output]) if (name) this.used.add(name);
      if (node.name) this.used.add(node.name);
    }
    for (const t of graph.initializer) if (t.name) this.used.add(t.name);
    for (const v of [...graph.input, ...graph.output]) if (v.name) this.used.add(v.name);
  }

  /** A tensor or node name not used anywhere in the graph yet, derived from `base`. */
  freshName(base: string): string {
    let name = base;
    for (let k = 1; this.used.has(name); k++) name = `${base}_${k}`;
    this.used.add(name);
    return name;
  }

  /**
   * Makes `readers` read `tensor` where they read the constant `name`. When they are the only
   * readers of an initializer, it is replaced in place (the name stays); otherwise `tensor`
   * becomes a new initializer with a fresh name and only `readers` are pointed at it. Returns
   * the name the readers now read.
   */
  replaceConstant(name: string, tensor: TensorProto, readers: readonly NodeProto[]): string {
    if (readers.length === 0) throw new Error(`internal: no reader given for constant '${name}'`);
    if (this.replacedInPlace.has(name)) throw new Error(`internal: constant '${name}' was already replaced for all its readers`);
    const initializerAt = this.graph.initializer.findIndex((t) => t.name === name);
    const exclusive =
      initializerAt >= 0 &&
      !this.index.isGraphOutput(name) &&
      this.index.consumers(name).every((c) => readers.includes(c));
    if (exclusive) {
      this.replacedInPlace.add(name);
      this.graph.initializer[initializerAt] = { ...tensor, name };
      if (this.initializersAreInputs) this.setInputShape(name, tensor);
      return name;
    }
    const fresh = this.freshName(`${name}_pruned`);
    this.addInitializer({ ...tensor, name: fresh });
    for (const reader of readers) this.renameInput(reader, name, fresh);
    return fresh;
  }

  addInitializer(tensor: TensorProto): void {
    this.graph.initializer.push(tensor);
    this.used.add(tensor.name!);
    if (this.initializersAreInputs) this.graph.input.push(makeValueInfo(tensor.name!, tensor.dataType, tensor.dims));
  }

  renameInput(node: NodeProto, from: string, to: string): void {
    let found = false;
    node.input = node.input.map((n) => {
      if (n !== from) return n;
      found = true;
      return to;
    });
    if (!found) throw new Error(`internal: ${node.opType} node '${node.name ?? ''}' does not read '${from}'`);
  }

  /** Queues `node` to be placed right before (or after) `anchor` in the node list. */
  insert(node: NodeProto, anchor: NodeProto, where: 'before' | 'after'): void {
    const slot = this.insertions.get(anchor) ?? { before: [], after: [] };
    slot[where].push(node);
    this.insertions.set(anchor, slot);
    for (const name of node.output) if (name) this.used.add(name);
    if (node.name) this.used.add(node.name);
  }

  /** Renames tensors everywhere they appear (node inputs and outputs, graph inputs and outputs), all at once. */
  rename(names: ReadonlyMap<string, string>): void {
    if (names.size === 0) return;
    const map = (n: string): string => names.get(n) ?? n;
    const taken = new Set<string>();
    for (const node of this.graph.node) for (const n of [...node.input, ...node.output]) if (n && !names.has(n)) taken.add(n);
    for (const v of [...this.graph.input, ...this.graph.output]) if (v.name && !names.has(v.name)) taken.add(v.name);
    for (const t of this.graph.initializer) if (t.name && !names.has(t.name)) taken.add(t.name);
    for (const [from, to] of names) {
      if (taken.has(to)) throw new Error(`internal: cannot rename '${from}' to '${to}': the name is in use`);
    }
    for (const node of this.graph.node) {
      node.input = node.input.map(map);
      node.output = node.output.map(map);
    }
    for (const v of [...this.graph.input, ...this.graph.output]) if (v.name) v.name = map(v.name);
  }

  /** Places queued insertions, then removes nodes and initializers nothing alive reads. */
  finish(): void {
    if (this.insertions.size > 0) {
      const nodes: NodeProto[] = [];
      for (const node of this.graph.node) {
        const slot = this.insertions.get(node);
        if (slot) nodes.push(...slot.before);
        nodes.push(node);
        if (slot) nodes.push(...slot.after);
      }
      this.graph.node = nodes;
      this.insertions.clear();
    }
    this.removeDead();
  }

  private removeDead(): void {
    const graph = this.graph;
    const live = new Set<string>(graph.output.map((o) => o.name ?? ''));
    const keep = new Array<boolean>(graph.node.length).fill(false);
    // Nodes are in topological order: one backward pass marks everything an output depends on.
    for (let i = graph.node.length - 1; i >= 0; i--) {
      const node = graph.node[i]!;
      if (!node.output.some((o) => o && live.has(o))) continue;
      keep[i] = true;
      for (const input of node.input) if (input) live.add(input);
      for (const name of subgraphInputs(node)) live.add(name);
    }
    graph.node = graph.node.filter((_, i) => keep[i]);
    const dropped = new Set(graph.initializer.filter((t) => !live.has(t.name ?? '')).map((t) => t.name));
    graph.initializer = graph.initializer.filter((t) => live.has(t.name ?? ''));
    if (this.initializersAreInputs) graph.input = graph.input.filter((v) => !dropped.has(v.name));
  }

  private setInputShape(name: string, tensor: TensorProto): void {
    const at = this.graph.input.findIndex((v) => v.name === name);
    if (at >= 0) this.graph.input[at] = makeValueInfo(name, tensor.dataType, tensor.dims);
  }
}

/** Names read inside a node's subgraphs (If / Loop / Scan bodies may read outer tensors). */
function subgraphInputs(node: NodeProto): string[] {
  const names: string[] = [];
  for (const attribute of node.attribute) {
    for (const g of [...(attribute.g ? [attribute.g] : []), ...attribute.graphs]) {
      for (const inner of g.node) {
        for (const n of inner.input) if (n) names.push(n);
        names.push(...subgraphInputs(inner));
      }
    }
  }
  return names;
}
