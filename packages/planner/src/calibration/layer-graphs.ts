/**
 * Pieces of a model's graph (the file the plan is made from, in any weight format), each a model of its own, so the calibration can run one layer
 * at a time (as SparseGPT, Wanda and FLAP calibrate): the embeddings (the graph's inputs to the
 * first layer's residual input) and each layer (its residual input, and the graph inputs it reads
 * such as the attention mask, position ids and its own empty cache, to its residual output). A
 * piece holds only the initializers its nodes read, so a session on it holds one layer's weights.
 *
 * Pieces share the source's node objects (never modified here; edits add nodes to the piece's own
 * list). Weights the source keeps in external data are read into the piece (one layer's worth)
 * unless the piece would be too large for one protobuf, in which case they stay external and
 * `openEdited` writes a temporary copy beside its data.
 */
import type { HfModel } from '@zerolm/adapters';
import {
  elementByteSize,
  makeNode,
  isExternalTensor,
  makeValueInfo,
  newTensorProto,
  readExternalTensorBytes,
  tensorElementCount,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '@zerolm/onnx';
import { activationTypeOf, type EditableGraph } from './graph-copy';

/** Pieces whose weights pass this many bytes keep their external data external. */
const MAX_INLINE_BYTES = 2 ** 30;

/** Names read inside a node's subgraphs (If / Loop bodies) that the subgraph does not make itself. */
function outerNames(node: NodeProto): string[] {
  const names: string[] = [];
  const visit = (graph: GraphProto) => {
    const local = new Set<string>([...graph.initializer.map((t) => t.name ?? ''), ...graph.input.map((i) => i.name ?? '')]);
    for (const n of graph.node) for (const o of n.output) local.add(o);
    for (const n of graph.node) {
      for (const i of n.input) if (i && !local.has(i)) names.push(i);
      for (const a of n.attribute) {
        if (a.g) visit(a.g);
        for (const g of a.graphs ?? []) visit(g);
      }
    }
  };
  for (const a of node.attribute) {
    if (a.g) visit(a.g);
    for (const g of a.graphs ?? []) visit(g);
  }
  return names;
}

/** A copy of `tensor` holding its external bytes inline. */
function inlined(tensor: TensorProto, baseDir: string): TensorProto {
  const size = elementByteSize(tensor.dataType ?? 0);
  if (size === undefined) throw new Error(`internal: initializer ${tensor.name} of an unreadable type cannot be read for a calibration piece`);
  const copy = newTensorProto({ ...tensor, externalData: [] });
  delete copy.dataLocation;
  copy.rawData = readExternalTensorBytes(tensor, baseDir, tensorElementCount(tensor) * size);
  return copy;
}

/**
 * A piece's own version of a node that also makes the residual stream the piece is cut at: the
 * fused residual norms of onnxruntime's optimizer and the genai builder
 * (`Skip[Simplified]LayerNormalization` sums input, skip and bias into the residual and normalises
 * it; the sum is the cut, fed from outside) become the plain norm of the cut.
 */
function normalizationOfCut(node: NodeProto, cut: string): NodeProto {
  const name = `${node.name ?? node.output[0]}/of_cut`;
  const norm =
    node.opType === 'SkipSimplifiedLayerNormalization'
      ? makeNode('SimplifiedLayerNormalization', [cut, node.input[2]!], [node.output[0]!], { axis: -1 }, { name })
      : node.opType === 'SkipLayerNormalization'
        ? makeNode('LayerNormalization', [cut, node.input[2]!, ...(node.input[3] ? [node.input[3]] : [])], [node.output[0]!], { axis: -1 }, { name })
        : undefined;
  if (norm) {
    norm.attribute.push(...node.attribute.filter((a) => a.name === 'epsilon'));
    return norm;
  }
  // Any other node (EmbedLayerNormalization, whose mask index the layer reads) runs as it is, its
  // copy of the cut going nowhere.
  return { ...node, output: node.output.map((o) => (o === cut ? `${cut}/unused_in_piece` : o)) };
}

/**
 * The piece of `model`'s graph that computes `outputs` from `cuts` (tensors fed from outside, as
 * float32 `[batch, sequence, width]`) and whatever graph inputs it reads.
 */
export function graphPiece(model: HfModel, outputs: readonly string[], cuts: readonly { name: string; width: number }[]): EditableGraph {
  const activationType = activationTypeOf(model);
  const source = model.onnx.model;
  const graph = source.graph!;
  const producer = new Map<string, NodeProto>();
  graph.node.forEach((node) => node.output.forEach((o) => o && producer.set(o, node)));
  const initializers = new Map(graph.initializer.map((t) => [t.name ?? '', t]));
  const graphInputs = new Map(graph.input.map((i) => [i.name ?? '', i]));
  const cutNames = new Set(cuts.map((c) => c.name));

  const nodes = new Set<NodeProto>();
  const replaced = new Map<NodeProto, NodeProto>();
  const usedInitializers = new Set<string>();
  const usedInputs = new Set<string>();
  const usedCuts = new Set<string>();
  const seen = new Set<string>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (!name || seen.has(name)) continue;
    seen.add(name);
    if (cutNames.has(name)) usedCuts.add(name);
    else if (initializers.has(name)) usedInitializers.add(name);
    else if (graphInputs.has(name)) usedInputs.add(name);
    else {
      const source = producer.get(name);
      if (!source) throw new Error(`internal: ${model.file} has no producer of ${name} for a calibration piece`);
      if (nodes.has(source)) continue;
      nodes.add(source);
      const cut = source.output.find((o) => cutNames.has(o));
      const node = cut === undefined ? source : normalizationOfCut(source, cut);
      if (node !== source) replaced.set(source, node);
      stack.push(...node.input, ...outerNames(node));
    }
  }
  for (const cut of cuts) {
    if (!usedCuts.has(cut.name)) throw new Error(`internal: the calibration piece for ${outputs.join(', ')} of ${model.file} does not read ${cut.name}`);
  }

  const baseDir = model.onnx.baseDir;
  const kept = graph.initializer.filter((t) => usedInitializers.has(t.name ?? ''));
  const externalBytes = kept.reduce((sum, t) => sum + (isExternalTensor(t) ? tensorElementCount(t) * (elementByteSize(t.dataType ?? 0) ?? 0) : 0), 0);
  const initializer = externalBytes <= MAX_INLINE_BYTES ? kept.map((t) => (isExternalTensor(t) ? inlined(t, baseDir) : t)) : kept;
  const input: ValueInfoProto[] = [
    ...cuts.map((c) => makeValueInfo(c.name, activationType, ['batch', 'sequence', c.width])),
    ...graph.input.filter((i) => usedInputs.has(i.name ?? '')),
  ];
  const piece: GraphProto = {
    ...graph,
    // Source order is a topological order.
    node: graph.node.filter((n) => nodes.has(n)).map((n) => replaced.get(n) ?? n),
    initializer,
    sparseInitializer: [],
    input,
    output: outputs.map((o) => makeValueInfo(o, activationType)),
    valueInfo: [],
    quantizationAnnotation: [],
  };
  const used = new Set<string>([...seen]);
  for (const n of piece.node) if (n.name) used.add(n.name);
  const opset = Number(source.opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 0);
  return {
    model: { ...source, graph: piece },
    graph: piece,
    baseDir,
    opset,
    activationType,
    fresh(base) {
      let name = base;
      for (let k = 1; used.has(name); k++) name = `${base}_${k}`;
      used.add(name);
      return name;
    },
  };
}

/** The embeddings: the graph's inputs to the first layer's residual input. */
export function embeddingPiece(model: HfModel): EditableGraph {
  return graphPiece(model, [model.match.layers[0]!.input], []);
}

/**
 * Layer `index`: from its residual input (`width` features) to `outputs` (tensors of the layer;
 * its residual output unless it is the last layer, whose output nothing here reads).
 */
export function layerPiece(model: HfModel, index: number, width: number, outputs: readonly string[]): EditableGraph {
  return graphPiece(model, outputs, [{ name: model.match.layers[index]!.input, width }]);
}
