/**
 * One ONNX file of a Hugging Face model folder, pruned by a plan: the surgery behind
 * `exportPrunedModel`. Works from the structural match of the adapters (which multiply is which
 * projection, the attention region, the residual tensors and cache names of each layer), never
 * from tensor names.
 *
 * - Weights are sliced in their stored type and layout (rows of a stored `[out, in]` weight when
 *   the consumer transposes it), with their per-axis scales and zero points; per-tensor scales
 *   stay. Biases follow their projection's columns. A fused q/k/v weight keeps the kept columns
 *   of each part and its Split gets the new sizes.
 * - The head counts in the attention's shape constants, and FFN widths in the FFN's (GPT-2's
 *   Conv1D reshapes), are rewritten (see `shapes.ts`).
 * - Decoder caches: each layer's `past_key_values.*` input and `present.*` output state the new
 *   key-value head count (transformers.js allocates the empty cache from these dims).
 * - A dropped layer is bypassed: its output tensor is renamed on its producer and
 *   `Identity(layer input)` produces it instead; its cache inputs and outputs go, the remaining
 *   ones are renumbered `0..L'-1`; dead nodes and initializers are removed.
 */
import { hasPrunableHeads, keptIndices, type Layer, type LayerPlan, type PrunePlan, type WeightMatrix } from '@zerolm/core';
import { multiplyResult, sourceColumns, type HfModel, type LayerMatch, type MatrixSource, type WeightMultiply } from '@zerolm/adapters';
import { DataType, intsAttribute, makeNode, type GraphProto, type ModelProto, type NodeProto, type ValueInfoProto } from '@zerolm/onnx';
import { GraphEditor } from './graph-edit';
import { attentionShapeTargets, ffnShapeTargets, rewriteFfnShapes, rewriteHeadShapes, rewriteSplitSizes, type HeadShape, type ShapeClaims } from './shapes';
import { newBias, overriddenBias, overriddenWeight, resolveOverrides, type ResolvedOverride, type WeightOverride } from './overrides';
import { gatherTensor, gatherVector } from './slice';
import { cutBlockQuantized, type Requantized } from './block-cut';
import { cutPackedBias, cutWidthNorm, gatherHeadBias, rewriteCutBounds, rewriteFusedHeads } from './fused';

/** Kept output columns and input rows of one weight multiply, in the consumer's orientation. */
interface MultiplyCut {
  cols?: number[];
  rows?: number[];
}

/** Shape of a layer after the plan. */
export interface KeptShape {
  readonly heads: number;
  readonly kvHeads: number;
  readonly ffnWidth: number;
}

/** What a plan leaves of a layer (undefined for a dropped layer). */
export function keptShape(layer: Layer, plan: LayerPlan): KeptShape | undefined {
  if (plan.dropped) return undefined;
  const a = layer.attention;
  const groups = hasPrunableHeads(a) ? plan.keptGroups.length : a.kvHeads;
  return { heads: groups * (a.heads / a.kvHeads), kvHeads: groups, ffnWidth: plan.keptNeurons.length };
}

function sourceOf(matrix: WeightMatrix): MatrixSource {
  const source = matrix.source as MatrixSource | undefined;
  if (!source?.multiply) throw new Error(`internal: matrix ${matrix.name} has no ONNX source`);
  return source;
}

/** The cuts a plan makes to each weight multiply of the graph. */
function collectCuts(hf: HfModel, plan: PrunePlan): Map<WeightMultiply, MultiplyCut> {
  const cuts = new Map<WeightMultiply, MultiplyCut>();
  const add = (multiply: WeightMultiply, axis: 'rows' | 'cols', indices: number[]) => {
    const cut = cuts.get(multiply) ?? {};
    cut[axis] = [...(cut[axis] ?? []), ...indices].sort((x, y) => x - y);
    cuts.set(multiply, cut);
  };
  hf.graph.layers.forEach((layer, i) => {
    const lp = plan.layers[i]!;
    if (lp.dropped) return;
    const modules = [
      ...(hasPrunableHeads(layer.attention) && lp.keptGroups.length < layer.attention.kvHeads ? layer.attention.matrices : []),
      ...(lp.keptNeurons.length < layer.ffn.width ? layer.ffn.matrices : []),
    ];
    for (const matrix of modules) {
      const kept = keptIndices(layer, matrix, lp);
      if (!kept) continue;
      const source = sourceOf(matrix);
      if (matrix.role === 'o' || matrix.role === 'down') add(source.multiply, 'rows', kept);
      else {
        const columns = sourceColumns(source);
        add(source.multiply, 'cols', kept.map((c) => columns[c]!));
      }
    }
  });
  return cuts;
}

/** The nodes that make up a weight multiply: its weight path, the node, and (MatMulInteger) the rescaling after it. */
function multiplyNodes(hf: HfModel, m: WeightMultiply): NodeProto[] {
  const nodes = [...m.weight.path, m.node];
  if (m.output !== m.node.output[0]) {
    // MatMulInteger -> Cast -> Mul(., Mul(x_scale, W_scale)): the scales are read two hops on.
    const final = hf.index.producer(m.output);
    if (final) {
      nodes.push(final);
      for (const input of final.input) {
        const producer = input ? hf.index.producer(input) : undefined;
        if (producer && producer.opType !== 'DynamicQuantizeLinear') nodes.push(producer);
      }
    }
  }
  return nodes;
}

function readersOf(name: string, nodes: readonly NodeProto[]): NodeProto[] {
  return nodes.filter((n) => n.input.includes(name));
}

function applyCut(hf: HfModel, editor: GraphEditor, m: WeightMultiply, cut: MultiplyCut, override: ResolvedOverride | undefined, requantized: Requantized[]): void {
  const w = m.weight;
  const baseDir = hf.onnx.baseDir;
  const where = `weight '${w.dataName}'`;
  const q = w.quantization;
  if (q?.scheme === 'matmul-nbits' || q?.scheme === 'matmul-bnb4') {
    const done = cutBlockQuantized(hf, editor, m, cut, override);
    if (done) requantized.push(done);
  } else {
    cutStored(hf, editor, m, cut, override);
  }
  if (m.bias && cut.cols) {
    const cols = w.shape[1]!;
    const bias = gatherVector(editor.index.constantTensor(m.bias.tensor)!, baseDir, cols, cut.cols, m.bias.tensor);
    if (bias) editor.replaceConstant(m.bias.tensor, bias, [m.bias.add]);
  }
  if (m.bias && override?.override.bias) {
    if (cut.cols) throw new Error(`internal: ${where} has both its columns cut and its bias overridden`);
    editor.replaceConstant(m.bias.tensor, overriddenBias(editor.index.constantTensor(m.bias.tensor)!, override.override.bias, m.bias.tensor), [m.bias.add]);
  } else if (override?.override.bias) {
    if (cut.cols) throw new Error(`internal: ${where} has both its columns cut and a bias added`);
    // fp16 files (fp16, q4f16) compute in float16, the others in float32.
    addBias(editor, m, override.override.bias, where, hf.dtype === 'fp16' || hf.dtype === 'q4f16' ? DataType.FLOAT16 : DataType.FLOAT);
  }
}

/** Adds `values` after a multiply that has no bias: a new tensor and an `Add` its readers read instead. */
function addBias(editor: GraphEditor, m: WeightMultiply, values: ArrayLike<number>, where: string, type: number): void {
  const producer = editor.index.producer(m.output);
  if (!producer) throw new Error(`internal: nothing produces the output '${m.output}' of ${where}`);
  if (editor.index.isGraphOutput(m.output)) throw new Error(`${where}: its output '${m.output}' is a graph output, so no bias can follow it`);
  const scope = (producer.name ?? m.output).replace(/\/[^/]*$/, '');
  const bias = editor.freshName(`${scope}/zerolm_bias`);
  editor.addInitializer(newBias(bias, values, type));
  const sum = editor.freshName(`${m.output}_biased`);
  for (const reader of editor.index.consumers(m.output)) editor.renameInput(reader, m.output, sum);
  editor.insert(makeNode('Add', [m.output, bias], [sum], {}, { name: editor.freshName(`${scope}/zerolm_bias/Add`) }), producer, 'after');
}

/** Cuts a weight stored element by element (float, or 8-bit with per-tensor or per-axis scales). */
function cutStored(hf: HfModel, editor: GraphEditor, m: WeightMultiply, cut: MultiplyCut, override: ResolvedOverride | undefined): void {
  const w = m.weight;
  const baseDir = hf.onnx.baseDir;
  const where = `weight '${w.dataName}'`;
  const q = w.quantization;
  if (q?.bits !== undefined) throw new Error(`${where}: ${q.scheme} weights are cut block by block`);
  if (w.storedShape.length !== 2) throw new Error(`${where}: stored with rank ${w.storedShape.length}, expected a matrix`);
  const local = multiplyNodes(hf, m);
  let tensor = editor.index.constantTensor(w.dataName)!;
  let scale = q && q.axis !== undefined ? editor.index.constantTensor(q.scale)! : undefined;
  let zeroPoint = q?.zeroPoint && q.axis !== undefined ? editor.index.constantTensor(q.zeroPoint)! : undefined;
  for (const [axis, indices] of [['rows', cut.rows], ['cols', cut.cols]] as const) {
    if (!indices) continue;
    // Logical rows are the stored rows unless the consumer transposes the stored tensor.
    const storedAxis = (axis === 'rows') !== w.transposed ? 0 : 1;
    tensor = gatherTensor(tensor, baseDir, storedAxis, indices, w.dataName);
    if (q?.axis === storedAxis) {
      const channels = w.storedShape[storedAxis]!;
      scale = gatherVector(scale!, baseDir, channels, indices, q.scale) ?? scale;
      if (zeroPoint) zeroPoint = gatherVector(zeroPoint, baseDir, channels, indices, q.zeroPoint!) ?? zeroPoint;
    }
  }
  if (override?.override.values) {
    const quantization = q ? { scale: scale ?? editor.index.constantTensor(q.scale)!, ...(q.zeroPoint ? { zeroPoint: zeroPoint ?? editor.index.constantTensor(q.zeroPoint)! } : {}), ...(q.axis === undefined ? {} : { axis: q.axis }) } : undefined;
    tensor = overriddenWeight(tensor, w, override.override.values, override.rows, override.cols, baseDir, quantization);
  }
  // Through Identity aliases (torch.onnx's deduplicated parameters), the sliced copy goes to the
  // first node that does more than pass the weight on: the alias and the tensor behind it may
  // have other readers, which keep what they read.
  const reader = [...w.path, m.node].find((n) => n.opType !== 'Identity')!;
  if (reader === w.path[0] || (w.path.length === 0 && reader === m.node)) editor.replaceConstant(w.dataName, tensor, readersOf(w.dataName, local));
  else editor.replaceConstant(reader === m.node ? w.consumedName : reader.input[0]!, tensor, [reader]);
  if (q && scale && scale !== editor.index.constantTensor(q.scale)) editor.replaceConstant(q.scale, scale, readersOf(q.scale, local));
  if (q?.zeroPoint && zeroPoint && zeroPoint !== editor.index.constantTensor(q.zeroPoint)) {
    editor.replaceConstant(q.zeroPoint, zeroPoint, readersOf(q.zeroPoint, local));
  }
}

/** Whether the Split's sizes add up to the packed width (it cuts the columns, not a parts axis). */
function splitsColumns(hf: HfModel, split: NodeProto, width: number): boolean {
  const sizes = split.input[1] ? hf.index.constantValue(split.input[1]) : undefined;
  const list = sizes ? Array.from(sizes as ArrayLike<number | bigint>, Number) : intsAttribute(split, 'split');
  return !list || list.length === 0 || list.reduce((a, b) => a + b, 0) === width;
}

function opsetOf(model: ModelProto): number {
  return Number(model.opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 0);
}

function setKvHeads(value: ValueInfoProto | undefined, kvHeads: number): void {
  const dims = value?.type?.tensorType?.shape?.dim;
  if (!dims || dims.length !== 4) return;
  dims[1] = { dimValue: kvHeads };
}

const CACHE_NAME = /^(past_key_values|present)\.(\d+)\.(.+)$/;

function renumberedCache(name: string, layer: number): string {
  const match = CACHE_NAME.exec(name);
  if (!match) throw new Error(`cache tensor '${name}' is not named <past_key_values|present>.<layer>.<key|value>`);
  return `${match[1]}.${layer}.${match[3]}`;
}

/** Every tensor a node reads is produced, an initializer, or a graph input. */
function checkDangling(graph: GraphProto, file: string): void {
  const known = new Set<string>([...graph.input.map((v) => v.name ?? ''), ...graph.initializer.map((t) => t.name ?? '')]);
  for (const node of graph.node) for (const o of node.output) if (o) known.add(o);
  for (const node of graph.node) {
    const missing = node.input.find((n) => n && !known.has(n));
    if (missing) throw new Error(`internal: after pruning ${file}, ${node.opType} node '${node.name ?? ''}' reads '${missing}', which nothing produces`);
  }
  const lost = graph.output.find((o) => !known.has(o.name ?? ''));
  if (lost) throw new Error(`internal: after pruning ${file}, nothing produces the output '${lost.name}'`);
}

/**
 * Prunes the model of `hf` (as loaded by `loadHfModel`) by `plan`, already validated against
 * `hf.graph`, and returns it; `overrides` replace the kept rows of pruned `o` / `down` multiplies
 * (see `overrides.ts`). Edits `hf.onnx.model` in memory (never the file): load the model afresh
 * for anything else.
 */
export function pruneOnnxModel(hf: HfModel, plan: PrunePlan, overrides: readonly WeightOverride[] = [], requantized: Requantized[] = []): ModelProto {
  const model = hf.onnx.model;
  const graph = model.graph!;
  const resolved = resolveOverrides(hf, plan, overrides);
  const changesShape = plan.layers.some((lp, i) => {
    const layer = hf.graph.layers[i]!;
    const shape = keptShape(layer, lp);
    return !shape || shape.heads !== layer.attention.heads || shape.kvHeads !== layer.attention.kvHeads || shape.ffnWidth !== layer.ffn.width;
  });
  if (!changesShape) return model;

  const editor = new GraphEditor(graph, hf.index, Number(model.irVersion ?? 0));
  const at = (i: number) => `${hf.file}: layer ${i}`;
  for (const [m, cut] of collectCuts(hf, plan)) applyCut(hf, editor, m, cut, resolved.get(m), requantized);

  // Counts in shape constants: FFN widths, head counts, the fused q/k/v Split sizes.
  const stopNodes = new Set(hf.match.multiplies.map((m) => m.node));
  const stopTensors = new Set(hf.match.multiplies.flatMap((m) => [m.output, multiplyResult(m)]));
  const claims: ShapeClaims = new Map();
  const opset = opsetOf(model);
  hf.match.layers.forEach((lm: LayerMatch, i) => {
    const a = hf.graph.layers[i]!.attention;
    const kept = keptShape(hf.graph.layers[i]!, plan.layers[i]!);
    if (!kept) return;
    const width = hf.graph.layers[i]!.ffn.width;
    if (kept.ffnWidth !== width) {
      rewriteFfnShapes(editor, ffnShapeTargets(hf.index, lm, stopNodes, stopTensors), width, kept.ffnWidth, at(i), claims);
      // A packed gate-up projection cut by Slices: their bounds among the kept columns.
      if (lm.ffn.upColumns && lm.ffn.gateColumns) {
        const { gateColumns, upColumns } = lm.ffn;
        const keptColumns = plan.layers[i]!.keptNeurons.flatMap((j) => [gateColumns[j]!, upColumns[j]!]).sort((x, y) => x - y);
        const total = lm.ffn.up.weight.shape[1] as number;
        rewriteCutBounds(editor, lm.ffn.gateCut, lm.ffn.gateColumns, keptColumns, total, at(i));
        rewriteCutBounds(editor, lm.ffn.upCut, lm.ffn.upColumns, keptColumns, total, at(i));
      }
    }
    if (kept.heads === a.heads && kept.kvHeads === a.kvHeads) return;
    // A Split that cuts the packed q/k/v columns themselves (GPT-2's c_attn); one that separates
    // the parts on their own axis (ModernBERT's unbind, sizes [1, 1, 1]) keeps its sizes.
    const fused = lm.attention.q.split !== undefined && splitsColumns(hf, lm.attention.q.split, lm.attention.q.multiply.weight.shape[1] as number);
    const fusedWidth = (heads: number, kvHeads: number) => (fused ? { fused: (heads + 2 * kvHeads) * a.headDim } : {});
    const before: HeadShape = { heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim, ...fusedWidth(a.heads, a.kvHeads) };
    const after: HeadShape = { heads: kept.heads, kvHeads: kept.kvHeads, headDim: a.headDim, ...fusedWidth(kept.heads, kept.kvHeads) };
    rewriteHeadShapes(editor, attentionShapeTargets(hf.index, lm, stopNodes, stopTensors), before, after, at(i), claims);
    rewriteFusedHeads(lm.attention, a, kept);
    const layer = hf.graph.layers[i]!;
    const keptColumns = (role: 'q' | 'k' | 'v') => keptIndices(layer, layer.attention.matrices.find((m) => m.role === role)!, plan.layers[i]!)!;
    cutPackedBias(hf, editor, lm.attention, { q: keptColumns('q'), k: keptColumns('k'), v: keptColumns('v') });
    for (const norm of lm.attention.widthNorms ?? []) cutWidthNorm(hf, editor, norm, keptColumns(norm.role), at(i));
    if (lm.attention.headBiases) {
      const group = a.heads / a.kvHeads;
      const keptHeads = plan.layers[i]!.keptGroups.flatMap((g) => Array.from({ length: group }, (_, j) => g * group + j));
      for (const bias of lm.attention.headBiases) gatherHeadBias(editor, bias, keptHeads, at(i));
    }
    // Parts of a packed q/k/v projection cut by Slices (Phi-3): their bounds among the kept columns.
    const packed = lm.attention.q.cut && lm.attention.q.multiply === lm.attention.k.multiply ? lm.attention.q.multiply : undefined;
    if (packed) {
      const columnsOf = (role: 'q' | 'k' | 'v') => sourceColumns(layer.attention.matrices.find((m) => m.role === role)!.source as MatrixSource);
      const keptAll = (['q', 'k', 'v'] as const).flatMap((role) => keptColumns(role).map((c) => columnsOf(role)[c]!)).sort((x, y) => x - y);
      for (const role of ['q', 'k', 'v'] as const) rewriteCutBounds(editor, lm.attention[role].cut, columnsOf(role), keptAll, packed.weight.shape[1] as number, at(i));
    }
    if (fused) {
      const split = lm.attention.q.split!;
      const sizes = new Array<number>(split.output.length).fill(0);
      for (const role of ['q', 'k', 'v'] as const) {
        sizes[lm.attention[role].splitIndex!] = (role === 'q' ? kept.heads : kept.kvHeads) * a.headDim;
      }
      rewriteSplitSizes(editor, split, sizes, opset, at(i));
    }
  });

  // Decoder caches: new key-value head counts, dropped layers' caches removed, the rest renumbered.
  const inputs = new Map(graph.input.map((v) => [v.name ?? '', v]));
  const outputs = new Map(graph.output.map((v) => [v.name ?? '', v]));
  const removed = new Set<string>();
  const renames = new Map<string, string>();
  const layerCaches = new Set<string>();
  let keptLayers = 0;
  hf.match.layers.forEach((lm, i) => {
    const a = lm.attention;
    const shape = keptShape(hf.graph.layers[i]!, plan.layers[i]!);
    const caches = [a.pastKey, a.pastValue, a.presentKey, a.presentValue].filter((n): n is string => !!n);
    caches.forEach((n) => layerCaches.add(n));
    if (!shape) {
      caches.forEach((n) => removed.add(n));
      return;
    }
    for (const name of [a.pastKey, a.pastValue]) if (name) setKvHeads(inputs.get(name), shape.kvHeads);
    for (const name of [a.presentKey, a.presentValue]) if (name) setKvHeads(outputs.get(name), shape.kvHeads);
    for (const name of caches) {
      const renamed = renumberedCache(name, keptLayers);
      if (renamed !== name) renames.set(name, renamed);
    }
    keptLayers++;
  });
  const strays = [...inputs.keys(), ...outputs.keys()].filter((n) => CACHE_NAME.test(n) && !layerCaches.has(n));
  if (strays.length > 0) {
    throw new Error(`${hf.file}: cache tensors ${strays.join(', ')} belong to no matched layer; cannot update the cache`);
  }

  // Dropped layers: the residual stream skips them.
  hf.match.layers.forEach((lm, i) => {
    if (!plan.layers[i]!.dropped) return;
    if (lm.fusedResidual) {
      throw new Error(`${at(i)}: cannot drop the layer: its residual additions are fused into Skip*LayerNormalization nodes with the norms around it`);
    }
    const producer = hf.index.producer(lm.output);
    if (!producer) throw new Error(`${at(i)}: the layer output '${lm.output}' has no producer`);
    const dead = editor.freshName(`${lm.output}_dropped`);
    producer.output = producer.output.map((o) => (o === lm.output ? dead : o));
    const identity = makeNode('Identity', [lm.input], [lm.output], {}, { name: editor.freshName(`/zerolm/drop_layer_${i}/Identity`) });
    editor.insert(identity, producer, 'before');
  });
  graph.input = graph.input.filter((v) => !removed.has(v.name ?? ''));
  graph.output = graph.output.filter((v) => !removed.has(v.name ?? ''));

  editor.finish();
  editor.rename(renames);
  checkDangling(graph, hf.file);
  // Shapes recorded for intermediate tensors are stale once counts change; they are optional.
  graph.valueInfo = [];
  return model;
}
