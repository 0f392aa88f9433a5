/**
 * The project's own small architecture-spec format, for describing a transformer to score
 * without a benchmark behind it (see the README, "Architecture specs", for the full format):
 *
 *     { "format": "zerolm-spec", "name": "tiny", "hiddenSize": 256,
 *       "layers": [{ "heads": 8, "kvHeads": 2, "headDim": 32, "ffnWidth": 688, "gated": true, "repeat": 4 }],
 *       "init": { "kind": "normal", "std": 0.02 } }
 */
import type { BiasVector, Layer, MatrixRole, ModuleGraph, WeightInit, WeightMatrix } from '@zerolm/core';
import { biasVector, drawnMatrix, normalInit, parseWeightInit } from './weights';
import {
  describeValue,
  expectArray,
  expectBoolean,
  expectInteger,
  expectObject,
  expectString,
  isObject,
  type JsonObject,
} from './validate';

export const ZEROLM_SPEC_FORMAT = 'zerolm-spec';

export interface ZerolmSpecLayer {
  /** Query heads. */
  readonly heads: number;
  /** Key-value heads (grouped-query attention); defaults to `heads`. Must divide `heads`. */
  readonly kvHeads?: number;
  readonly headDim: number;
  /** FFN hidden width (neurons). */
  readonly ffnWidth: number;
  /** A gated FFN (SwiGLU style: up, gate, down); default false (up, down). */
  readonly gated?: boolean;
  /** How many consecutive identical layers this item stands for; default 1. */
  readonly repeat?: number;
}

export interface ZerolmSpec {
  readonly format: typeof ZEROLM_SPEC_FORMAT;
  readonly name: string;
  readonly hiddenSize: number;
  readonly layers: readonly ZerolmSpecLayer[];
  /** Distribution of every weight matrix; default N(0, 0.02^2). */
  readonly init?: WeightInit;
  /** Per-role overrides of `init` (e.g. a smaller std for `o` and `down`). */
  readonly initByRole?: Readonly<Partial<Record<MatrixRole, WeightInit>>>;
  /** Whether every matrix has a bias; default false. */
  readonly bias?: boolean;
  /** FFN activation name; default `silu` for gated FFNs, `gelu` otherwise. */
  readonly activation?: string;
  /** Parameters outside the Attention/FFN modules (embeddings, norms), if known. */
  readonly otherParams?: number;
}

export interface ZerolmSpecGraphOptions {
  /** Extra seed text, to draw a different (still reproducible) set of weights. */
  readonly seed?: string;
}

const TOP_LEVEL_KEYS = ['format', 'name', 'hiddenSize', 'layers', 'init', 'initByRole', 'bias', 'activation', 'otherParams'];
const LAYER_KEYS = ['heads', 'kvHeads', 'headDim', 'ffnWidth', 'gated', 'repeat'];
const ROLES: readonly MatrixRole[] = ['q', 'k', 'v', 'o', 'up', 'gate', 'down'];

export function looksLikeZerolmSpec(value: unknown): value is JsonObject {
  return isObject(value) && value['format'] === ZEROLM_SPEC_FORMAT;
}

function rejectUnknownKeys(obj: JsonObject, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw new Error(`${where}: unknown field "${key}" (allowed: ${allowed.join(', ')})`);
  }
}

/** Checks a zerolm-spec document and returns it typed. */
export function parseZerolmSpec(value: unknown, where = 'zerolm-spec'): ZerolmSpec {
  const obj = expectObject(value, where);
  if (obj['format'] !== ZEROLM_SPEC_FORMAT) {
    throw new Error(`${where}: format must be "${ZEROLM_SPEC_FORMAT}" (got ${describeValue(obj['format'])})`);
  }
  rejectUnknownKeys(obj, TOP_LEVEL_KEYS, where);
  const layerList = expectArray(obj['layers'], `${where}.layers`);
  if (layerList.length === 0) throw new Error(`${where}.layers must list at least one layer`);
  const layers = layerList.map((raw, i): ZerolmSpecLayer => {
    const at = `${where}.layers[${i}]`;
    const layer = expectObject(raw, at);
    rejectUnknownKeys(layer, LAYER_KEYS, at);
    const heads = expectInteger(layer['heads'], `${at}.heads`);
    const kvHeads = layer['kvHeads'] === undefined ? heads : expectInteger(layer['kvHeads'], `${at}.kvHeads`);
    if (heads % kvHeads !== 0) throw new Error(`${at}.kvHeads (${kvHeads}) must divide heads (${heads})`);
    return {
      heads,
      kvHeads,
      headDim: expectInteger(layer['headDim'], `${at}.headDim`),
      ffnWidth: expectInteger(layer['ffnWidth'], `${at}.ffnWidth`),
      gated: layer['gated'] === undefined ? false : expectBoolean(layer['gated'], `${at}.gated`),
      repeat: layer['repeat'] === undefined ? 1 : expectInteger(layer['repeat'], `${at}.repeat`),
    };
  });
  let initByRole: Partial<Record<MatrixRole, WeightInit>> | undefined;
  if (obj['initByRole'] !== undefined) {
    const raw = expectObject(obj['initByRole'], `${where}.initByRole`);
    initByRole = {};
    for (const [role, init] of Object.entries(raw)) {
      if (!(ROLES as readonly string[]).includes(role)) {
        throw new Error(`${where}.initByRole: unknown role "${role}" (roles: ${ROLES.join(', ')})`);
      }
      initByRole[role as MatrixRole] = parseWeightInit(init, `${where}.initByRole.${role}`);
    }
  }
  return {
    format: ZEROLM_SPEC_FORMAT,
    name: expectString(obj['name'], `${where}.name`),
    hiddenSize: expectInteger(obj['hiddenSize'], `${where}.hiddenSize`),
    layers,
    ...(obj['init'] === undefined ? {} : { init: parseWeightInit(obj['init'], `${where}.init`) }),
    ...(initByRole === undefined ? {} : { initByRole }),
    ...(obj['bias'] === undefined ? {} : { bias: expectBoolean(obj['bias'], `${where}.bias`) }),
    ...(obj['activation'] === undefined ? {} : { activation: expectString(obj['activation'], `${where}.activation`) }),
    ...(obj['otherParams'] === undefined
      ? {}
      : { otherParams: expectInteger(obj['otherParams'], `${where}.otherParams`, 0) }),
  };
}

/** Builds the module graph a zerolm-spec describes (pre-norm decoder layout; norms not modelled). */
export function zerolmSpecToGraph(spec: ZerolmSpec, options: ZerolmSpecGraphOptions = {}): ModuleGraph {
  const hidden = spec.hiddenSize;
  const defaultInit = spec.init ?? normalInit(0.02);
  const initFor = (role: MatrixRole): WeightInit => spec.initByRole?.[role] ?? defaultInit;
  const layers: Layer[] = [];
  for (const item of spec.layers) {
    for (let r = 0; r < (item.repeat ?? 1); r++) {
      const index = layers.length;
      const prefix = `layers.${index}`;
      const source = { format: ZEROLM_SPEC_FORMAT, architecture: spec.name, layer: index };
      const matrices: WeightMatrix[] = [];
      const biases: BiasVector[] = [];
      const add = (list: WeightMatrix[], biasList: BiasVector[], name: string, role: MatrixRole, rows: number, cols: number): void => {
        list.push(drawnMatrix(`${prefix}.${name}`, role, rows, cols, initFor(role), source, options.seed));
        if (spec.bias === true) biasList.push(biasVector(`${prefix}.${name}.bias`, role, cols));
      };
      const kvHeads = item.kvHeads ?? item.heads;
      add(matrices, biases, 'attention.q', 'q', hidden, item.heads * item.headDim);
      add(matrices, biases, 'attention.k', 'k', hidden, kvHeads * item.headDim);
      add(matrices, biases, 'attention.v', 'v', hidden, kvHeads * item.headDim);
      add(matrices, biases, 'attention.o', 'o', item.heads * item.headDim, hidden);
      const ffnMatrices: WeightMatrix[] = [];
      const ffnBiases: BiasVector[] = [];
      add(ffnMatrices, ffnBiases, 'ffn.up', 'up', hidden, item.ffnWidth);
      if (item.gated === true) add(ffnMatrices, ffnBiases, 'ffn.gate', 'gate', hidden, item.ffnWidth);
      add(ffnMatrices, ffnBiases, 'ffn.down', 'down', item.ffnWidth, hidden);
      layers.push({
        index,
        attention: { kind: 'attention', heads: item.heads, kvHeads, headDim: item.headDim, matrices, biases },
        ffn: {
          width: item.ffnWidth,
          activation: spec.activation ?? (item.gated === true ? 'silu' : 'gelu'),
          matrices: ffnMatrices,
          biases: ffnBiases,
        },
      });
    }
  }
  return {
    name: spec.name,
    family: ZEROLM_SPEC_FORMAT,
    hiddenSize: hidden,
    layers,
    ...(spec.otherParams === undefined ? {} : { otherParams: spec.otherParams }),
  };
}
