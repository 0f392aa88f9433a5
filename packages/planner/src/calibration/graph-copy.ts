/**
 * Editable copies of a model's ONNX graph (the file the plan is made from, in any weight format)
 * for the calibration passes: extra outputs (the inputs of `down` and `o`, reduced to their
 * second moments inside the graph, in float32), weights turned into graph inputs, and a session
 * on the edited copy. The model's own file is only read.
 */
import type { HfModel } from '@zerolm/adapters';
import {
  DataType,
  encodeModel,
  externalDataLocations,
  loadModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  resolveExternalPath,
  type GraphProto,
  type ModelProto,
} from '@zerolm/onnx';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openSession, type Device, type OpenedSession, type ort } from '@zerolm/runtime';

export interface EditableGraph {
  readonly model: ModelProto;
  readonly graph: GraphProto;
  /** Folder the model's external data is read from. */
  readonly baseDir: string;
  /** Version of the default ONNX domain the graph was written for. */
  readonly opset: number;
  /**
   * Element type of the activations between the graph's inputs and outputs: FLOAT16 in fp16 and
   * q4f16 files (transformers.js's conversion keeps only the graph I/O in float32), else FLOAT.
   */
  readonly activationType: number;
  /** A name not used in the graph yet, derived from `base`. */
  fresh(base: string): string;
}

/** A fresh copy of the graph of `model`'s file (decoded again: edits never reach `model`). */
export function editableCopy(model: HfModel): EditableGraph {
  const loaded = loadModel(model.file);
  const proto = loaded.model;
  const graph = proto.graph!;
  const used = new Set<string>();
  for (const node of graph.node) for (const n of [...node.input, ...node.output, node.name ?? '']) if (n) used.add(n);
  for (const t of graph.initializer) if (t.name) used.add(t.name);
  for (const v of [...graph.input, ...graph.output]) if (v.name) used.add(v.name);
  const opset = Number(proto.opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 0);
  return {
    model: proto,
    graph,
    baseDir: loaded.baseDir,
    opset,
    activationType: model.dtype === 'fp16' || model.dtype === 'q4f16' ? DataType.FLOAT16 : DataType.FLOAT,
    fresh(base) {
      let name = base;
      for (let k = 1; used.has(name); k++) name = `${base}_${k}`;
      used.add(name);
      return name;
    },
  };
}

/** An int64 initializer (shapes, axes). */
export function addInt64Constant(edit: EditableGraph, base: string, values: readonly number[]): string {
  const name = edit.fresh(base);
  edit.graph.initializer.push(makeTensor(name, [values.length], BigInt64Array.from(values.map(BigInt))));
  return name;
}

/** `ReduceSum(x, axes, keepdims)` written for the graph's opset (axes an input from opset 13). */
export function reduceSum(edit: EditableGraph, input: string, axes: readonly number[], keepdims: boolean, output: string): void {
  if (edit.opset >= 13) {
    const axesName = addInt64Constant(edit, `${output}/axes`, axes);
    edit.graph.node.push(makeNode('ReduceSum', [input, axesName], [output], { keepdims: keepdims ? 1 : 0 }, { name: edit.fresh(`${output}/ReduceSum`) }));
  } else {
    edit.graph.node.push(makeNode('ReduceSum', [input], [output], { axes: [...axes], keepdims: keepdims ? 1 : 0 }, { name: edit.fresh(`${output}/ReduceSum`) }));
  }
}

/**
 * Adds outputs with the moments of `tensor` (any shape whose last axis has `width` features), over
 * the rows of one run: the sum of x (`[width]`) and the sum of (x - m)(x - m)^T about the run's
 * own mean m (`[width, width]`), in float32. Centring inside the run keeps the float32 sums
 * accurate to the spread of the features even when their means are large; the caller combines
 * runs in float64 (`E[x x^T] = sum over runs of (G + n m m^T) / N`).
 */
export function addMomentOutputs(edit: EditableGraph, tensor: string, width: number, prefix: string): { gram: string; sum: string } {
  const shape = addInt64Constant(edit, `${prefix}/shape`, [-1, width]);
  const flat = edit.fresh(`${prefix}/flat`);
  const runMean = edit.fresh(`${prefix}/run_mean`);
  const deviation = edit.fresh(`${prefix}/deviation`);
  const deviationT = edit.fresh(`${prefix}/deviation_t`);
  const gram = edit.fresh(`${prefix}/gram`);
  const sum = edit.fresh(`${prefix}/sum`);
  const nodes = edit.graph.node;
  let source = tensor;
  if (edit.activationType !== DataType.FLOAT) {
    // Sums of squares of float16 activations overflow float16: reduce in float32.
    source = edit.fresh(`${prefix}/float`);
    nodes.push(makeNode('Cast', [tensor], [source], { to: DataType.FLOAT }, { name: edit.fresh(`${prefix}/Cast`) }));
  }
  nodes.push(makeNode('Reshape', [source, shape], [flat], {}, { name: edit.fresh(`${prefix}/Reshape`) }));
  reduceSum(edit, flat, [0], false, sum);
  if (edit.opset >= 18) {
    const axes = addInt64Constant(edit, `${prefix}/mean_axes`, [0]);
    nodes.push(makeNode('ReduceMean', [flat, axes], [runMean], { keepdims: 1 }, { name: edit.fresh(`${prefix}/ReduceMean`) }));
  } else {
    nodes.push(makeNode('ReduceMean', [flat], [runMean], { axes: [0], keepdims: 1 }, { name: edit.fresh(`${prefix}/ReduceMean`) }));
  }
  nodes.push(makeNode('Sub', [flat, runMean], [deviation], {}, { name: edit.fresh(`${prefix}/Sub`) }));
  nodes.push(makeNode('Transpose', [deviation], [deviationT], { perm: [1, 0] }, { name: edit.fresh(`${prefix}/Transpose`) }));
  nodes.push(makeNode('MatMul', [deviationT, deviation], [gram], {}, { name: edit.fresh(`${prefix}/MatMul`) }));
  edit.graph.output.push(makeValueInfo(gram, DataType.FLOAT, [width, width]), makeValueInfo(sum, DataType.FLOAT, [width]));
  return { gram, sum };
}

/** A session on the edited copy and its clean-up (a temporary folder when the model keeps external data). */
export interface EditedSession extends OpenedSession {
  release(): Promise<void>;
}

export async function openEdited(edit: EditableGraph, device: Device): Promise<EditedSession> {
  const locations = externalDataLocations(edit.model);
  let folder: string | undefined;
  try {
    let source: string | Uint8Array;
    let options: ort.InferenceSession.SessionOptions = {};
    if (locations.length > 0) {
      // onnxruntime resolves external data next to the file it opens (and refuses symbolic links
      // that leave that folder): the edited copy goes to a temporary folder with hard links to
      // the model's own data files, read in place; across file systems, the data is handed over
      // in memory instead.
      folder = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-calibration-'));
      source = path.join(folder, 'model.onnx');
      fs.writeFileSync(source, encodeModel(edit.model));
      const inMemory: { path: string; data: Uint8Array }[] = [];
      for (const location of locations) {
        const link = resolveExternalPath(folder, location);
        const target = resolveExternalPath(edit.baseDir, location);
        fs.mkdirSync(path.dirname(link), { recursive: true });
        try {
          fs.linkSync(target, link);
        } catch {
          inMemory.push({ path: location, data: fs.readFileSync(target) });
        }
      }
      if (inMemory.length > 0) options = { externalData: inMemory };
    } else {
      source = encodeModel(edit.model);
    }
    const opened = await openSession(source, device, options);
    const cleanup = folder;
    return {
      ...opened,
      release: async () => {
        await opened.session.release();
        if (cleanup) fs.rmSync(cleanup, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (folder) fs.rmSync(folder, { recursive: true, force: true });
    throw new Error(`onnxruntime cannot run the calibration copy of ${edit.baseDir}: ${(error as Error).message.split('\n')[0]}`);
  }
}
