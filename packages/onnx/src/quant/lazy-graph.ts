/**
 * A graph whose initializers produce their values on demand: what the weight-format converters
 * (`convert.ts`) read and write. The fixture generator builds its graphs this way (values drawn
 * one tensor at a time while the file is written); `lazyGraphOf` wraps a decoded model the same
 * way, and `modelOfLazyGraph` turns a converted graph back into a model.
 */
import { DataType, type ModelProto, type NodeProto, type ValueInfoProto } from '../proto';
import { float32ToFloat16Array, float32ToBfloat16Array } from '../float16';
import { decodeTensor, elementByteSize, newTensorProto, tensorElementCount } from '../tensor';
import type { TensorProto } from '../proto';

/** Values in the raw element layout of their data type (FLOAT16 as its bit patterns). */
export type LazyValues = Float32Array | Float64Array | Uint16Array | Int16Array | Int8Array | Uint8Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

export interface LazyTensor {
  name: string;
  /** A `DataType` value. */
  dataType: number;
  dims: number[];
  values(): LazyValues;
}

export interface LazyGraph {
  name: string;
  /** In topological order. */
  nodes: NodeProto[];
  initializers: LazyTensor[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
}

/** The main graph of `model` with lazily decoded initializers (external data read from `baseDir`). */
export function lazyGraphOf(model: ModelProto, baseDir?: string): LazyGraph {
  const graph = model.graph;
  if (!graph) throw new Error('the model has no graph');
  return {
    name: graph.name ?? 'main_graph',
    nodes: graph.node,
    inputs: graph.input,
    outputs: graph.output,
    initializers: graph.initializer.map((tensor) => ({
      name: tensor.name ?? '',
      dataType: tensor.dataType ?? DataType.UNDEFINED,
      dims: tensor.dims.map(Number),
      values: (): LazyValues => {
        const decoded = decodeTensor(tensor, { baseDir });
        if (tensor.dataType === DataType.FLOAT16) return float32ToFloat16Array(decoded as Float32Array);
        if (tensor.dataType === DataType.BFLOAT16) return float32ToBfloat16Array(decoded as Float32Array);
        return decoded as LazyValues;
      },
    })),
  };
}

/**
 * `template` with its main graph replaced by `graph` (initializers materialized, value_info
 * dropped: shapes of intermediate tensors are optional and may be stale) and `opsetImports`
 * added where missing.
 */
export function modelOfLazyGraph(template: ModelProto, graph: LazyGraph, opsetImports: readonly { domain: string; version: number }[] = []): ModelProto {
  const opsetImport = [...template.opsetImport];
  for (const o of opsetImports) if (!opsetImport.some((p) => (p.domain ?? '') === o.domain)) opsetImport.push({ domain: o.domain, version: o.version });
  const base = template.graph;
  return {
    ...template,
    opsetImport,
    graph: {
      node: graph.nodes,
      initializer: graph.initializers.map(materialize),
      sparseInitializer: [],
      input: graph.inputs,
      output: graph.outputs,
      valueInfo: [],
      quantizationAnnotation: [],
      metadataProps: base?.metadataProps ?? [],
      name: graph.name,
      ...(base?.docString !== undefined ? { docString: base.docString } : {}),
    },
  };
}

/** The initializer of a lazy tensor, its values' raw bytes in `rawData`. */
export function materialize(lazy: LazyTensor): TensorProto {
  const tensor = newTensorProto({ name: lazy.name, dims: [...lazy.dims], dataType: lazy.dataType });
  const values = lazy.values();
  const expected = tensorElementCount(tensor) * (elementByteSize(lazy.dataType) ?? NaN);
  if (values.byteLength !== expected) {
    throw new Error(`tensor '${lazy.name}': ${values.byteLength} bytes of values for dims [${lazy.dims.join(', ')}] (expected ${expected})`);
  }
  tensor.rawData = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  return tensor;
}
