/**
 * Making and reading node attributes. Reading helpers return plain values with the defaults the
 * operator schemas give, so adapters write `intAttribute(node, 'transB', 0)`.
 */
import { OnnxError } from './errors';
import {
  AttributeType,
  type AttributeProto,
  type GraphProto,
  type Int64,
  type NodeProto,
  type TensorProto,
} from './proto';

/** Values `makeAttribute` accepts; the attribute type is inferred unless given. */
export type AttributeValue =
  | number
  | bigint
  | string
  | Uint8Array
  | TensorProto
  | GraphProto
  | readonly (number | bigint)[]
  | readonly string[]
  | readonly TensorProto[]
  | readonly GraphProto[];

/** An AttributeProto with every repeated field present; `fields` fills in the rest. */
export function newAttributeProto(fields: Partial<AttributeProto> = {}): AttributeProto {
  return {
    floats: [],
    ints: [],
    strings: [],
    tensors: [],
    graphs: [],
    sparseTensors: [],
    typeProtos: [],
    ...fields,
  };
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

function isTensor(value: unknown): value is TensorProto {
  return typeof value === 'object' && value !== null && 'dims' in value && 'int64Data' in value;
}

function isGraph(value: unknown): value is GraphProto {
  return typeof value === 'object' && value !== null && 'node' in value && 'initializer' in value;
}

function inferType(value: AttributeValue): number {
  if (typeof value === 'bigint') return AttributeType.INT;
  if (typeof value === 'number') return Number.isInteger(value) ? AttributeType.INT : AttributeType.FLOAT;
  if (typeof value === 'string' || value instanceof Uint8Array) return AttributeType.STRING;
  if (isTensor(value)) return AttributeType.TENSOR;
  if (isGraph(value)) return AttributeType.GRAPH;
  const items = value as readonly unknown[];
  if (items.length === 0) return AttributeType.INTS;
  const first = items[0];
  if (typeof first === 'string') return AttributeType.STRINGS;
  if (isTensor(first)) return AttributeType.TENSORS;
  if (isGraph(first)) return AttributeType.GRAPHS;
  return items.every((v) => typeof v === 'bigint' || Number.isInteger(v)) ? AttributeType.INTS : AttributeType.FLOATS;
}

/**
 * An attribute. Integers become INT/INTS and other numbers FLOAT/FLOATS unless `type` says
 * otherwise (pass `AttributeType.FLOAT` for a float attribute whose value happens to be whole,
 * e.g. `alpha = 1`).
 */
export function makeAttribute(name: string, value: AttributeValue, type = inferType(value)): AttributeProto {
  const attribute = newAttributeProto({ name, type });
  const list = value as readonly unknown[];
  switch (type) {
    case AttributeType.FLOAT:
      attribute.f = Number(value);
      break;
    case AttributeType.INT:
      attribute.i = value as Int64;
      break;
    case AttributeType.STRING:
      attribute.s = typeof value === 'string' ? utf8Encoder.encode(value) : (value as Uint8Array);
      break;
    case AttributeType.TENSOR:
      attribute.t = value as TensorProto;
      break;
    case AttributeType.GRAPH:
      attribute.g = value as GraphProto;
      break;
    case AttributeType.FLOATS:
      attribute.floats = list.map(Number);
      break;
    case AttributeType.INTS:
      attribute.ints = [...(list as Int64[])];
      break;
    case AttributeType.STRINGS:
      attribute.strings = (list as string[]).map((s) => utf8Encoder.encode(s));
      break;
    case AttributeType.TENSORS:
      attribute.tensors = [...(list as TensorProto[])];
      break;
    case AttributeType.GRAPHS:
      attribute.graphs = [...(list as GraphProto[])];
      break;
    default:
      throw new OnnxError(`attribute '${name}': makeAttribute cannot build attribute type ${type}`);
  }
  return attribute;
}

/** The attribute called `name`, if the node has one. */
export function findAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

function nodeLabel(node: NodeProto): string {
  return `${node.opType ?? '?'} node '${node.name ?? ''}'`;
}

function wrongType(node: NodeProto, name: string, expected: string): OnnxError {
  return new OnnxError(`${nodeLabel(node)}: attribute '${name}' is not ${expected}`);
}

/**
 * An INT attribute as a number (INT64 sentinels beyond +-2^53, such as INT64_MAX, become the
 * nearest double), or `fallback` when absent.
 */
export function intAttribute(node: NodeProto, name: string, fallback: number): number;
export function intAttribute(node: NodeProto, name: string): number | undefined;
export function intAttribute(node: NodeProto, name: string, fallback?: number): number | undefined {
  const attribute = findAttribute(node, name);
  if (!attribute) return fallback;
  if (attribute.i === undefined) throw wrongType(node, name, 'an integer');
  return Number(attribute.i);
}

/** A FLOAT attribute, or `fallback` when absent. */
export function floatAttribute(node: NodeProto, name: string, fallback: number): number;
export function floatAttribute(node: NodeProto, name: string): number | undefined;
export function floatAttribute(node: NodeProto, name: string, fallback?: number): number | undefined {
  const attribute = findAttribute(node, name);
  if (!attribute) return fallback;
  if (attribute.f === undefined) throw wrongType(node, name, 'a float');
  return attribute.f;
}

/** An INTS attribute as numbers (see `intAttribute`), or `undefined` when absent. */
export function intsAttribute(node: NodeProto, name: string): number[] | undefined {
  const attribute = findAttribute(node, name);
  if (!attribute) return undefined;
  if (attribute.type !== undefined && attribute.type !== AttributeType.INTS) throw wrongType(node, name, 'a list of integers');
  return attribute.ints.map(Number);
}

/** A FLOATS attribute, or `undefined` when absent. */
export function floatsAttribute(node: NodeProto, name: string): number[] | undefined {
  const attribute = findAttribute(node, name);
  if (!attribute) return undefined;
  if (attribute.type !== undefined && attribute.type !== AttributeType.FLOATS) throw wrongType(node, name, 'a list of floats');
  return [...attribute.floats];
}

/** A STRING attribute decoded as UTF-8, or `fallback` when absent. */
export function stringAttribute(node: NodeProto, name: string, fallback: string): string;
export function stringAttribute(node: NodeProto, name: string): string | undefined;
export function stringAttribute(node: NodeProto, name: string, fallback?: string): string | undefined {
  const attribute = findAttribute(node, name);
  if (!attribute) return fallback;
  if (attribute.s === undefined) throw wrongType(node, name, 'a string');
  return utf8Decoder.decode(attribute.s);
}

/** A TENSOR attribute, or `undefined` when absent. */
export function tensorAttribute(node: NodeProto, name: string): TensorProto | undefined {
  const attribute = findAttribute(node, name);
  if (!attribute) return undefined;
  if (attribute.t === undefined) throw wrongType(node, name, 'a tensor');
  return attribute.t;
}
