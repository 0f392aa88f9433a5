/**
 * Builders for writing models (fixtures, exporters): each returns a complete message object with
 * every repeated field present, ready for `encodeModel`.
 */
import { makeAttribute, type AttributeValue } from './attributes';
import {
  DataType,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type OperatorSetIdProto,
  type StringStringEntryProto,
  type TensorProto,
  type TensorShapeDimension,
  type ValueInfoProto,
} from './proto';

export interface MakeNodeOptions {
  name?: string;
  /** Operator domain; omit for the default ONNX domain. */
  domain?: string;
}

/**
 * A node. `attributes` maps names to values (types inferred, see `makeAttribute`) or to ready
 * AttributeProtos. Empty strings in `inputs` mark omitted optional inputs, as in ONNX.
 */
export function makeNode(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: Record<string, AttributeValue | AttributeProto> = {},
  options: MakeNodeOptions = {},
): NodeProto {
  const node: NodeProto = {
    input: [...inputs],
    output: [...outputs],
    opType,
    attribute: Object.entries(attributes).map(([name, value]) =>
      isAttributeProto(value) ? { ...value, name } : makeAttribute(name, value),
    ),
    metadataProps: [],
    deviceConfigurations: [],
  };
  if (options.name !== undefined) node.name = options.name;
  if (options.domain !== undefined) node.domain = options.domain;
  return node;
}

function isAttributeProto(value: unknown): value is AttributeProto {
  return typeof value === 'object' && value !== null && 'typeProtos' in value && 'sparseTensors' in value;
}

/** One dimension of a shape: a size, a symbolic name, or `null` for unknown. */
export type DimensionSpec = number | string | null;

/**
 * A tensor-typed ValueInfoProto (graph inputs, outputs, value_info). `shape` undefined leaves
 * the rank unknown.
 */
export function makeValueInfo(name: string, elemType: number = DataType.FLOAT, shape?: readonly DimensionSpec[]): ValueInfoProto {
  const tensorType: NonNullable<ValueInfoProto['type']>['tensorType'] = { elemType };
  if (shape) {
    tensorType.shape = {
      dim: shape.map((d): TensorShapeDimension => (d === null ? {} : typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
    };
  }
  return { name, type: { tensorType }, metadataProps: [] };
}

export interface MakeGraphOptions {
  name?: string;
  nodes: NodeProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  initializers?: TensorProto[];
  valueInfo?: ValueInfoProto[];
  docString?: string;
}

export function makeGraph(options: MakeGraphOptions): GraphProto {
  const graph: GraphProto = {
    node: options.nodes,
    name: options.name ?? 'graph',
    initializer: options.initializers ?? [],
    sparseInitializer: [],
    input: options.inputs,
    output: options.outputs,
    valueInfo: options.valueInfo ?? [],
    quantizationAnnotation: [],
    metadataProps: [],
  };
  if (options.docString !== undefined) graph.docString = options.docString;
  return graph;
}

export interface MakeModelOptions {
  /** Default: ONNX opset 17 in the default domain. */
  opsetImports?: OperatorSetIdProto[];
  /** Default 8 (ONNX 1.10+; accepted by every onnxruntime release this project supports). */
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Record<string, string>;
}

export const DEFAULT_OPSET = 17;
export const DEFAULT_IR_VERSION = 8;

export function makeModel(graph: GraphProto, options: MakeModelOptions = {}): ModelProto {
  const metadataProps: StringStringEntryProto[] = Object.entries(options.metadata ?? {}).map(([key, value]) => ({
    key,
    value,
  }));
  const model: ModelProto = {
    irVersion: options.irVersion ?? DEFAULT_IR_VERSION,
    opsetImport: options.opsetImports ?? [{ domain: '', version: DEFAULT_OPSET }],
    producerName: options.producerName ?? 'zerolm',
    graph,
    metadataProps,
    trainingInfo: [],
    functions: [],
    configuration: [],
  };
  if (options.producerVersion !== undefined) model.producerVersion = options.producerVersion;
  if (options.docString !== undefined) model.docString = options.docString;
  return model;
}
