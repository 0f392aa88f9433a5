/**
 * Attention units ranked by what removing them does to the model's output: for each layer,
 * greedily remove the unit (a key-value group with its query heads) whose removal, after the
 * least-squares refit of `o` on the calibration moments, changes the output on the calibration
 * sequences least. Only that one layer is changed per candidate. The output change is
 * - decoders (`kl`): the mean KL(p_full || p_removed) of the next-token distributions;
 * - encoders (`hidden`, no next-token distribution): the mean squared change of the final hidden
 *   states, ||h_full - h_removed||^2 per token (`last_hidden_state`, or the last layer's output
 *   where the export has only a task head's output).
 *
 * One session serves every candidate: in a copy of the model's graph every layer's `o` weight
 * (and its output bias, where there is one) is a float32 graph input (a quantized or float16
 * `o` becomes a float32 MatMul for this), and the graph itself computes the output
 * (log-probabilities, or hidden states) and, against the full model's fed back in, the change at
 * every position.
 */
import { multiplyResult, type HfModel } from '@zerolm/adapters';
import { groupRange, hasPrunableHeads, type Layer } from '@zerolm/core';
import { DataType, decodeTensorAsFloat32, intAttribute, makeNode, makeValueInfo } from '@zerolm/onnx';
import { cacheInputs, fullPassFeeds, ort, type Device } from '@zerolm/runtime';
import type { Calibration } from './calibrate';
import { editableCopy, openEdited, reduceSum, type EditedSession } from './graph-copy';
import { absorbedBias, centred, refitRows } from './obs';

/** At most this many candidate passes over the calibration sequences (else the caller ranks by block OBS). */
export const DEFAULT_MAX_KL_PASSES = 96;
/** At most this many bytes of the full model's log-probabilities kept for the comparison. */
export const MAX_REFERENCE_BYTES = 512 * 2 ** 20;
/** Elements of one logits tensor per onnxruntime run. */
const LOGITS_PER_RUN = 8 * 2 ** 20;

/** Forward passes the greedy KL ranking makes: per layer with G >= 2 units, G + (G - 1) + ... + 2. */
export function klPasses(layers: readonly Layer[]): number {
  let passes = 0;
  for (const layer of layers) {
    if (!hasPrunableHeads(layer.attention)) continue;
    const g = layer.attention.kvHeads;
    if (g >= 2) passes += (g * (g + 1)) / 2 - 1;
  }
  return passes;
}

/** The module's `o` weight in module-graph orientation (`rows x cols`) and its output bias, if any. */
export function outputProjection(model: HfModel, layerIndex: number): { weights: Float64Array; rows: number; cols: number; bias?: Float64Array } {
  const layer = model.graph.layers[layerIndex]!;
  const o = layer.attention.matrices.find((m) => m.role === 'o')!;
  const multiply = model.match.layers[layerIndex]!.attention.o;
  const bias = multiply.bias ? biasValues(model, multiply.bias.tensor) : undefined;
  return { weights: Float64Array.from(o.values()), rows: o.rows, cols: o.cols, ...(bias ? { bias } : {}) };
}

export function biasValues(model: HfModel, tensor: string): Float64Array {
  const proto = model.index.constantTensor(tensor);
  if (!proto) throw new Error(`internal: bias ${tensor} of ${model.file} is not a constant`);
  return Float64Array.from(decodeTensorAsFloat32(proto, { baseDir: model.onnx.baseDir }));
}

/** The rows of `o` (query features) that kv group `group` owns. */
export function groupRows(layer: Layer, group: number): number[] {
  const o = layer.attention.matrices.find((m) => m.role === 'o')!;
  const [start, end] = groupRange(layer.attention, o, group);
  return Array.from({ length: end - start }, (_, i) => start + i);
}

/** How the output change of a candidate is measured (see the module comment). */
export type AblationCriterion = 'kl' | 'hidden';

/** The criterion a model gets: KL of next-token predictions for decoders, hidden-state change for encoders. */
export function ablationCriterion(model: HfModel): AblationCriterion {
  return model.config.decoder ? 'kl' : 'hidden';
}

/** The tensor the `hidden` criterion compares: `last_hidden_state`, else the last layer's output. */
export function finalHidden(model: HfModel): string {
  const outputs = (model.onnx.model.graph?.output ?? []).map((o) => o.name);
  return outputs.includes('last_hidden_state') ? 'last_hidden_state' : model.match.layers[model.match.layers.length - 1]!.output;
}

/** Features per position of the compared output: the vocabulary (`kl`) or the hidden size. */
export function criterionWidth(model: HfModel, calibration: Calibration, criterion: AblationCriterion): number {
  return criterion === 'kl' ? calibration.sequences.vocabulary : model.graph.hiddenSize;
}

interface KlSession {
  opened: EditedSession;
  /** Graph input names per layer: the o weight and its bias. */
  inputs: { weight: string; bias?: string; transposed: boolean }[];
  /** The compared output (log-probabilities or hidden states). */
  logp: string;
  /** Its change per position (KL or squared distance). */
  kl: string;
  reference: string;
}

async function openKlSession(model: HfModel, device: Device, criterion: AblationCriterion): Promise<KlSession> {
  const edit = editableCopy(model);
  const graph = edit.graph;
  // The copy is decoded from the same file: its nodes sit where the matched model's do.
  const original = model.onnx.model.graph!.node;
  const copyOf = (node: (typeof original)[number]) => {
    const copy = graph.node[original.indexOf(node)];
    if (!copy || copy.output[0] !== node.output[0]) throw new Error(`internal: node ${node.name ?? node.output[0]} is not where it was in the calibration copy`);
    return copy;
  };
  const inputs: KlSession['inputs'] = [];
  // Nodes to insert after a node of the copy; inserted once every lookup by position is done.
  const insertions = new Map<(typeof original)[number], ReturnType<typeof makeNode>[]>();
  model.match.layers.forEach((lm, i) => {
    const multiply = lm.attention.o;
    const node = copyOf(multiply.node);
    const [rows, cols] = multiply.weight.shape as [number, number];
    const weight = edit.fresh(`zerolm/ablation/${i}/o`);
    const bias = multiply.bias ? edit.fresh(`zerolm/ablation/${i}/o_bias`) : undefined;
    if (bias) graph.input.push(makeValueInfo(bias, DataType.FLOAT, [cols]));
    const plainFloat = (node.opType === 'MatMul' || node.opType === 'Gemm') && (node.domain ?? '') === '' && edit.activationType === DataType.FLOAT;
    if (plainFloat) {
      const transposed = node.opType === 'Gemm' && intAttribute(node, 'transB', 0) !== 0;
      node.input[1] = weight;
      graph.input.push(makeValueInfo(weight, DataType.FLOAT, transposed ? [cols, rows] : [rows, cols]));
      if (bias) {
        const add = copyOf(multiply.bias!.add);
        add.input = add.input.map((name) => (name === multiply.bias!.tensor ? bias : name));
      }
      inputs.push({ weight, transposed, ...(bias ? { bias } : {}) });
      return;
    }
    // Quantized or float16 multiplies: a float32 MatMul (and bias Add) takes their place, fed
    // from the same activation and writing the same result; the old nodes' result goes nowhere.
    graph.input.push(makeValueInfo(weight, DataType.FLOAT, [rows, cols]));
    const activation = node.opType === 'MatMulInteger' ? model.index.producer(multiply.node.input[0]!)!.input[0]! : node.input[0]!;
    const result = multiplyResult(multiply);
    const producer = copyOf(model.index.producer(result)!);
    producer.output = producer.output.map((o) => (o === result ? edit.fresh(`${result}/replaced`) : o));
    const nodes: ReturnType<typeof makeNode>[] = [];
    const at = `zerolm/ablation/${i}/o`;
    let x = activation;
    if (edit.activationType !== DataType.FLOAT) {
      x = edit.fresh(`${at}/input_float`);
      nodes.push(makeNode('Cast', [activation], [x], { to: DataType.FLOAT }, { name: edit.fresh(`${at}/Cast`) }));
    }
    const cast = edit.activationType !== DataType.FLOAT;
    const product = !bias && !cast ? result : edit.fresh(`${at}/MatMul_output`);
    nodes.push(makeNode('MatMul', [x, weight], [product], {}, { name: edit.fresh(`${at}/MatMul`) }));
    let y = product;
    if (bias) {
      y = cast ? edit.fresh(`${at}/Add_output`) : result;
      nodes.push(makeNode('Add', [product, bias], [y], {}, { name: edit.fresh(`${at}/Add`) }));
    }
    if (cast) nodes.push(makeNode('Cast', [y], [result], { to: edit.activationType }, { name: edit.fresh(`${at}/CastBack`) }));
    insertions.set(producer, nodes);
    inputs.push({ weight, transposed: false, ...(bias ? { bias } : {}) });
  });
  for (const [after, nodes] of insertions) graph.node.splice(graph.node.indexOf(after) + 1, 0, ...nodes);
  const reference = edit.fresh('zerolm/ablation/reference');
  const difference = edit.fresh('zerolm/ablation/difference');
  const terms = edit.fresh('zerolm/ablation/terms');
  const kl = edit.fresh('zerolm/ablation/change');
  let logp: string;
  if (criterion === 'kl') {
    logp = edit.fresh('zerolm/ablation/logp');
    const probabilities = edit.fresh('zerolm/ablation/p');
    graph.node.push(
      makeNode('LogSoftmax', ['logits'], [logp], { axis: -1 }, { name: edit.fresh('zerolm/ablation/LogSoftmax') }),
      makeNode('Exp', [reference], [probabilities], {}, { name: edit.fresh('zerolm/ablation/Exp') }),
      makeNode('Sub', [reference, logp], [difference], {}, { name: edit.fresh('zerolm/ablation/Sub') }),
      makeNode('Mul', [probabilities, difference], [terms], {}, { name: edit.fresh('zerolm/ablation/Mul') }),
    );
  } else {
    logp = finalHidden(model);
    if (edit.activationType !== DataType.FLOAT) {
      const hidden = logp;
      logp = edit.fresh('zerolm/ablation/hidden_float');
      graph.node.push(makeNode('Cast', [hidden], [logp], { to: DataType.FLOAT }, { name: edit.fresh('zerolm/ablation/Cast') }));
    }
    graph.node.push(
      makeNode('Sub', [reference, logp], [difference], {}, { name: edit.fresh('zerolm/ablation/Sub') }),
      makeNode('Mul', [difference, difference], [terms], {}, { name: edit.fresh('zerolm/ablation/Mul') }),
    );
  }
  reduceSum(edit, terms, [-1], false, kl);
  graph.input.push(makeValueInfo(reference, DataType.FLOAT, ['batch', 'sequence', 'features']));
  graph.output = [makeValueInfo(logp, DataType.FLOAT, ['batch', 'sequence', 'features']), makeValueInfo(kl, DataType.FLOAT, ['batch', 'sequence'])];
  // The original weights and biases are read by nothing now; onnxruntime drops them.
  return { opened: await openEdited(edit, device), inputs, logp, kl, reference };
}

function asFloat32(values: Float64Array, rows: number, cols: number, transposed: boolean): Float32Array {
  const out = new Float32Array(values.length);
  if (!transposed) {
    out.set(values);
    return out;
  }
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

export interface KlRanking {
  /** Per layer: kv groups in removal order (the last one is the most important). */
  orders: number[][];
  /** Candidate passes over the calibration sequences (the reference pass not counted). */
  passes: number;
}

/**
 * The greedy KL removal order of every layer's attention units (see the module comment). The
 * caller checks `klPasses` against its budget first.
 */
export async function klAttentionOrders(
  model: HfModel,
  calibration: Calibration,
  options: { device?: Device; onProgress?: (done: number, total: number) => void } = {},
): Promise<KlRanking> {
  const criterion = ablationCriterion(model);
  const { tokens, samples, length } = calibration.sequences;
  const vocabulary = criterionWidth(model, calibration, criterion);
  if (samples * length * vocabulary * 4 > MAX_REFERENCE_BYTES) {
    throw new Error(`internal: the attention ranking would keep ${samples * length * vocabulary * 4} bytes of reference outputs`);
  }
  const session = await openKlSession(model, options.device ?? 'auto', criterion);
  try {
    const { opened } = session;
    const cache = cacheInputs(opened.session, model);
    const perRun = Math.max(1, Math.min(samples, Math.floor(LOGITS_PER_RUN / (length * Math.max(1, vocabulary)))));
    const batches: { start: number; batch: number; feeds: Record<string, ort.Tensor> }[] = [];
    for (let start = 0; start < samples; start += perRun) {
      const batch = Math.min(perRun, samples - start);
      const ids = new BigInt64Array(batch * length);
      for (let i = 0; i < ids.length; i++) ids[i] = BigInt(tokens[start * length + i]!);
      batches.push({ start, batch, feeds: fullPassFeeds(opened.session, cache, { batch, seqLen: length, ids, mask: new BigInt64Array(batch * length).fill(1n) }) });
    }
    const projections = model.graph.layers.map((_, i) => outputProjection(model, i));
    const original: Record<string, ort.Tensor> = {};
    projections.forEach((p, i) => {
      const names = session.inputs[i]!;
      original[names.weight] = new ort.Tensor('float32', asFloat32(p.weights, p.rows, p.cols, names.transposed), names.transposed ? [p.cols, p.rows] : [p.rows, p.cols]);
      if (names.bias && p.bias) original[names.bias] = new ort.Tensor('float32', Float32Array.from(p.bias), [p.cols]);
    });
    const run = async (feeds: Record<string, ort.Tensor>, fetch: string): Promise<ort.Tensor> => {
      try {
        return (await opened.session.run(feeds, [fetch]))[fetch] as ort.Tensor;
      } catch (error) {
        throw new Error(`onnxruntime failed on the attention ablation of ${model.file}: ${(error as Error).message.split('\n')[0]}`);
      }
    };
    // The full model's log-probabilities (the reference input is read only for the KL output).
    const references: ort.Tensor[] = [];
    for (const b of batches) {
      const zeros = new ort.Tensor('float32', new Float32Array(b.batch * length * vocabulary), [b.batch, length, vocabulary]);
      references.push(await run({ ...b.feeds, ...original, [session.reference]: zeros }, session.logp));
    }
    const total = klPasses(model.graph.layers);
    let passes = 0;
    const meanKl = async (layerIndex: number, weights: Float64Array, bias: Float64Array | undefined): Promise<number> => {
      const names = session.inputs[layerIndex]!;
      const p = projections[layerIndex]!;
      const changed: Record<string, ort.Tensor> = {
        [names.weight]: new ort.Tensor('float32', asFloat32(weights, p.rows, p.cols, names.transposed), names.transposed ? [p.cols, p.rows] : [p.rows, p.cols]),
      };
      if (names.bias && bias) changed[names.bias] = new ort.Tensor('float32', Float32Array.from(bias), [p.cols]);
      let sum = 0;
      for (const [k, b] of batches.entries()) {
        const kl = await run({ ...b.feeds, ...original, ...changed, [session.reference]: references[k]! }, session.kl);
        for (const v of kl.data as Float32Array) sum += v;
      }
      passes++;
      options.onProgress?.(passes, total);
      return sum / (samples * length);
    };

    const orders: number[][] = [];
    for (const [i, layer] of model.graph.layers.entries()) {
      const groups = layer.attention.kvHeads;
      if (!hasPrunableHeads(layer.attention) || groups < 2) {
        orders.push(Array.from({ length: groups }, (_, g) => g));
        continue;
      }
      const p = projections[i]!;
      const moments = calibration.layers[i]!.attention;
      const second = p.bias ? centred(moments.second, moments.mean) : moments.second;
      const alive = Array.from({ length: groups }, (_, g) => g);
      const order: number[] = [];
      while (alive.length > 1) {
        let best = -1;
        let bestKl = Infinity;
        for (const g of alive) {
          const kept = alive.filter((x) => x !== g).flatMap((x) => groupRows(layer, x));
          const candidate = refitLayerMatrix(second, p.weights, p.rows, p.cols, kept);
          const bias = p.bias ? absorbedBias(p.bias, moments.mean, p.weights, p.cols, kept, compactRows(candidate, p.cols, kept)) : undefined;
          const kl = await meanKl(i, candidate, bias);
          if (kl < bestKl) {
            bestKl = kl;
            best = g;
          }
        }
        order.push(best);
        alive.splice(alive.indexOf(best), 1);
      }
      order.push(...alive);
      orders.push(order);
    }
    return { orders, passes };
  } finally {
    await session.opened.release();
  }
}

/** The full `rows x cols` matrix with the kept rows refitted and the others zero. */
export function refitLayerMatrix(second: Float64Array, weights: Float64Array, rows: number, cols: number, kept: readonly number[]): Float64Array {
  const refitted = refitRows({ second, n: rows, weights, d: cols, kept });
  const out = new Float64Array(rows * cols);
  kept.forEach((r, i) => out.set(refitted.subarray(i * cols, (i + 1) * cols), r * cols));
  return out;
}

/** The kept rows of a full matrix, in order. */
function compactRows(full: Float64Array, cols: number, kept: readonly number[]): Float64Array {
  const out = new Float64Array(kept.length * cols);
  kept.forEach((r, i) => out.set(full.subarray(r * cols, (r + 1) * cols), i * cols));
  return out;
}
