/**
 * Hugging Face `config.json` normalised once per model_type (as transformers.js does in its
 * configs.js), so that nothing downstream branches on model names.
 */
import { existsSync, readFileSync } from 'fs';
import { join } from 'path';
import { findFamily, registeredFamilies, type FamilyDefinition, type ModelFamily } from './families';

export type { ModelFamily } from './families';

export interface FamilyInfo {
  readonly family: ModelFamily;
  /** Decoders take `past_key_values.*` inputs and produce `present.*` outputs. */
  readonly decoder: boolean;
}

/** The registered families by model_type (see `families/`), as they stand when this module loads. */
export const SUPPORTED_MODEL_TYPES: Readonly<Record<string, FamilyInfo>> = Object.fromEntries(
  registeredFamilies().map((f) => [f.modelType, { family: f.group, decoder: f.decoder }]),
);

/** What `zerolm prune` records in config.json about the units it kept (see the planner). */
export interface PrunedLayerRecord {
  heads: number;
  kvHeads: number;
  ffnWidth: number;
}

export interface NormalizedConfig {
  readonly modelType: string;
  readonly family: ModelFamily;
  readonly decoder: boolean;
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly ffnWidth: number;
  readonly activation: string;
  /** Per-layer shapes of a pruned model (config.json `zerolm.layers`), when present. */
  readonly prunedLayers?: readonly PrunedLayerRecord[];
  /** The file as read. */
  readonly raw: Readonly<Record<string, unknown>>;
}

function positiveInteger(raw: Record<string, unknown>, keys: readonly string[], where: string): number {
  for (const key of keys) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      throw new Error(`${where}: "${key}" must be a positive integer (got ${JSON.stringify(value)})`);
    }
    return value;
  }
  throw new Error(`${where}: missing "${keys[0]}"${keys.length > 1 ? ` (or ${keys.slice(1).join(', ')})` : ''}`);
}

function optionalPositiveInteger(raw: Record<string, unknown>, keys: readonly string[], where: string): number | undefined {
  return keys.some((k) => raw[k] !== undefined && raw[k] !== null) ? positiveInteger(raw, keys, where) : undefined;
}

function stringField(raw: Record<string, unknown>, keys: readonly string[], fallback: string): string {
  for (const key of keys) if (typeof raw[key] === 'string') return raw[key] as string;
  return fallback;
}

/** The registered family of a model_type; an error naming the supported ones otherwise. */
export function familyDefinition(modelType: unknown, where: string): FamilyDefinition {
  const supported = registeredFamilies().map((f) => f.modelType).join(', ');
  if (typeof modelType !== 'string' || modelType === '') throw new Error(`${where}: missing "model_type" (supported: ${supported})`);
  const family = findFamily(modelType);
  if (!family) throw new Error(`unsupported model family "${modelType}" (${where}); supported: ${supported}`);
  return family;
}

export function familyOf(modelType: unknown, where: string): FamilyInfo & { modelType: string } {
  const family = familyDefinition(modelType, where);
  return { family: family.group, decoder: family.decoder, modelType: family.modelType };
}

function prunedLayers(raw: Record<string, unknown>, numLayers: number, where: string): PrunedLayerRecord[] | undefined {
  const block = raw['zerolm'];
  if (block === undefined) return undefined;
  const layers = (block as { layers?: unknown }).layers;
  if (!Array.isArray(layers) || layers.length !== numLayers) {
    throw new Error(`${where}: "zerolm.layers" must list the ${numLayers} layers of the pruned model`);
  }
  return layers.map((layer, i) => {
    const record = layer as Record<string, unknown>;
    const at = `${where}: zerolm.layers[${i}]`;
    return {
      heads: positiveInteger(record, ['heads'], at),
      kvHeads: positiveInteger(record, ['kvHeads'], at),
      ffnWidth: positiveInteger(record, ['ffnWidth'], at),
    };
  });
}

export function normalizeConfig(raw: Record<string, unknown>, where = 'config.json'): NormalizedConfig {
  const definition = familyDefinition(raw['model_type'], where);
  const { modelType, group: family, decoder, keys } = definition;
  const numLayers = positiveInteger(raw, keys.layers, where);
  const hiddenSize = positiveInteger(raw, keys.hidden, where);
  const heads = positiveInteger(raw, keys.heads, where);
  const kvHeads = (keys.kvHeads && optionalPositiveInteger(raw, keys.kvHeads, where)) ?? heads;
  const ffnWidth = keys.ffnWidthDefault
    ? (optionalPositiveInteger(raw, keys.ffnWidth, where) ?? keys.ffnWidthDefault(hiddenSize))
    : positiveInteger(raw, keys.ffnWidth, where);
  const activation = stringField(raw, keys.activation, keys.activationDefault);
  let headDim = keys.headDim ? optionalPositiveInteger(raw, [keys.headDim], where) : undefined;
  if (heads % kvHeads !== 0) {
    throw new Error(`${where}: num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`);
  }
  // A pruned model states its head size: with fewer heads, hidden / heads no longer gives it.
  const zerolm = raw['zerolm'];
  if (typeof zerolm === 'object' && zerolm !== null && (zerolm as Record<string, unknown>)['headDim'] !== undefined) {
    headDim = positiveInteger(zerolm as Record<string, unknown>, ['headDim'], `${where}: zerolm`);
  }
  if (headDim === undefined) {
    if (hiddenSize % heads !== 0) throw new Error(`${where}: hidden size ${hiddenSize} is not divisible by ${heads} heads`);
    headDim = hiddenSize / heads;
  }
  const pruned = prunedLayers(raw, numLayers, where);
  return {
    modelType,
    family,
    decoder,
    numLayers,
    hiddenSize,
    heads,
    kvHeads,
    headDim,
    ffnWidth,
    activation,
    ...(pruned ? { prunedLayers: pruned } : {}),
    raw,
  };
}

/**
 * The config.json keys that state a model's shape, per model_type (the write-side twin of
 * `normalizeConfig`): the first key of each list is the one Hugging Face writes, the others are
 * aliases some configs carry as well. `headDim` is absent where the family derives it.
 */
export interface ConfigShapeKeys {
  readonly layers: readonly string[];
  readonly heads: readonly string[];
  readonly kvHeads?: readonly string[];
  readonly ffnWidth: readonly string[];
  readonly headDim?: string;
}

export function configShapeKeys(modelType: string): ConfigShapeKeys {
  const { keys, writesHeadDim } = familyDefinition(modelType, 'config.json');
  return {
    layers: keys.layers,
    heads: keys.heads,
    ...(keys.kvHeads ? { kvHeads: keys.kvHeads } : {}),
    ffnWidth: keys.ffnWidth,
    ...(writesHeadDim && keys.headDim ? { headDim: keys.headDim } : {}),
  };
}

export function readConfig(modelDir: string): NormalizedConfig {
  const file = join(modelDir, 'config.json');
  if (!existsSync(file)) throw new Error(`no config.json in ${modelDir}: not a Hugging Face model folder`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file} must hold a JSON object`);
  return normalizeConfig(raw as Record<string, unknown>, file);
}

/** ONNX file names transformers.js 4.3.1 loads for each dtype (`utils/dtypes.js` suffixes). */
export const DTYPE_FILES = {
  fp32: 'model.onnx',
  fp16: 'model_fp16.onnx',
  q8: 'model_quantized.onnx',
  int8: 'model_int8.onnx',
  uint8: 'model_uint8.onnx',
  q4: 'model_q4.onnx',
  q4f16: 'model_q4f16.onnx',
  bnb4: 'model_bnb4.onnx',
} as const;
export type ModelDtype = keyof typeof DTYPE_FILES;

/** Every dtype, most precise first: the order `auto` picks in (8-bit before 4-bit, float scales before float16). */
export const DTYPES_BY_PRECISION: readonly ModelDtype[] = ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4'];

/** A dtype, or `auto`: the most precise file the folder holds. */
export type DtypeChoice = ModelDtype | 'auto';

/** The dtypes whose files `onnx/` of `modelDir` holds, most precise first. */
export function presentDtypes(modelDir: string): ModelDtype[] {
  return DTYPES_BY_PRECISION.filter((d) => existsSync(join(modelDir, 'onnx', DTYPE_FILES[d])));
}

/** `dtype` itself, or for `auto` the most precise dtype present (an error naming the expected files when none is). */
export function resolveDtype(modelDir: string, dtype: DtypeChoice = 'fp32'): ModelDtype {
  if (dtype !== 'auto') {
    if (!Object.prototype.hasOwnProperty.call(DTYPE_FILES, dtype)) {
      throw new Error(`unknown dtype "${String(dtype)}" (known: auto, ${Object.keys(DTYPE_FILES).join(', ')})`);
    }
    return dtype;
  }
  const present = presentDtypes(modelDir);
  if (present.length === 0) {
    throw new Error(`no ONNX model in ${join(modelDir, 'onnx')} (expected one of ${Object.values(DTYPE_FILES).join(', ')})`);
  }
  return present[0]!;
}

export function onnxFileFor(modelDir: string, dtype: DtypeChoice = 'fp32'): string {
  const resolved = resolveDtype(modelDir, dtype);
  const name = DTYPE_FILES[resolved];
  const file = join(modelDir, 'onnx', name);
  if (!existsSync(file)) {
    const present = presentDtypes(modelDir);
    throw new Error(
      `no onnx/${name} in ${modelDir} for dtype ${resolved}${present.length ? ` (available: ${present.join(', ')}; --dtype auto picks ${present[0]})` : ' (the folder has no ONNX model)'}`,
    );
  }
  return file;
}
