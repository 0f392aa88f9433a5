/**
 * GPT-2 architectures of the LiteTransformerSearch (LTS) space, as microsoft/archai built them
 * for the `random_GPT2_wt103` runs: `HfGPT2Flex` (archai/nlp/models/hf_gpt2/model_hf_gpt2.py)
 * with `HfGPT2FlexConfig` (config_hf_gpt2.py) and `GPT2LMHeadModelFlex`
 * (hf_gpt2_utils/gpt2_lm_head_model_flex.py): GPT-2 blocks with per-layer heads and FFN width,
 * an adaptive input embedding and a projected adaptive softmax whose weights are tied to it.
 *
 * The authors' counts (`params.Attn`, `params.FFN`) are the parameters of the `GPT2Attention`
 * and `GPT2MLPFlex` modules: c_attn and c_proj with biases, c_fc and c_proj with biases, no
 * LayerNorm. The README ("Architecture specs") records how every other count was reproduced.
 */
import type { BiasVector, Layer, ModuleGraph, WeightMatrix } from '@zerolm/core';
import { biasVector, drawnMatrix, normalInit } from './weights';
import {
  describeValue,
  expectArray,
  expectBoolean,
  expectInteger,
  expectNumber,
  expectObject,
  expectPerLayerIntegers,
  expectPositiveNumber,
  isObject,
  type JsonObject,
} from './validate';

/** The `model_config` fields the adapter reads (the saved configs carry more, all ignored). */
export interface LtsModelConfig {
  readonly n_layer: number;
  readonly d_model: number;
  /** Heads per layer (a single number means the same in every layer). */
  readonly n_head: readonly number[];
  /** FFN width per layer. */
  readonly d_inner: readonly number[];
  /** Saved as -1; `HfGPT2FlexConfig` always uses d_model // n_head, whatever this says. */
  readonly d_head?: number;
  readonly n_token: number;
  readonly d_embed: number;
  readonly div_val: number;
  readonly cutoffs: readonly number[];
  readonly tie_projs: readonly boolean[];
  readonly adaptive: boolean;
  /** Sequence length; GPT-2's learned position table has this many rows (`n_positions`). */
  readonly tgt_len: number;
  /** `initializer_range` of the GPT-2 init. */
  readonly weight_init_std: number;
  /** Std of the adaptive embedding / softmax projections (not part of any module). */
  readonly proj_init_std: number;
  readonly primer_square: boolean;
}

/** An LTS benchmark entry. Lower perplexity is better. */
export interface LtsEntry {
  readonly id: string;
  readonly model_config: LtsModelConfig;
  readonly valid_ppl?: number;
  readonly test_ppl?: number;
  /** The authors' parameter counts. */
  readonly params?: Readonly<Record<string, number>>;
}

export interface LtsGraphOptions {
  /** Extra seed text, to draw a different (still reproducible) set of weights. */
  readonly seed?: string;
}

/**
 * Whether `value` is an LTS entry (`{id, model_config}`, checked in full by `parseLtsEntry`) or a
 * bare LTS `model_config` (recognised by d_model, n_layer, n_head and d_inner).
 */
export function looksLikeLtsEntry(value: unknown): value is JsonObject {
  if (!isObject(value)) return false;
  if (isObject(value['model_config'])) return true;
  return ['d_model', 'n_layer', 'n_head', 'd_inner'].every((key) => key in value);
}

/**
 * Checks an LTS entry and returns its typed fields. Accepts a bare `model_config` too (then the
 * id is `fallbackId`).
 */
export function parseLtsEntry(value: unknown, where = 'LTS entry', fallbackId = 'lts-gpt2'): LtsEntry {
  const obj = expectObject(value, where);
  const isEntry = isObject(obj['model_config']);
  const id = isEntry ? obj['id'] : fallbackId;
  if (typeof id !== 'string' || id.length === 0) throw new Error(`${where}: id must be a non-empty string (got ${describeValue(id)})`);
  const at = isEntry ? `${where} (id ${id}): model_config` : where;
  const raw = isEntry ? (obj['model_config'] as JsonObject) : obj;

  const layers = expectInteger(raw['n_layer'], `${at}.n_layer`);
  const dModel = expectInteger(raw['d_model'], `${at}.d_model`);
  const heads = expectPerLayerIntegers(raw['n_head'], layers, `${at}.n_head`);
  heads.forEach((h, i) => {
    // GPT2Attention raises the same error.
    if (dModel % h !== 0) throw new Error(`${at}.n_head[${i}]: d_model ${dModel} is not divisible by ${h} heads`);
  });
  const nToken = expectInteger(raw['n_token'], `${at}.n_token`);
  const cutoffs = raw['cutoffs'] === undefined ? [] : expectArray(raw['cutoffs'], `${at}.cutoffs`);
  const tieProjs = raw['tie_projs'] === undefined ? [] : expectArray(raw['tie_projs'], `${at}.tie_projs`);
  if (raw['primer_conv'] === true) {
    throw new Error(`${at}.primer_conv: Primer-EZ convolutions are not supported by the LTS adapter`);
  }
  const config: LtsModelConfig = {
    n_layer: layers,
    d_model: dModel,
    n_head: heads,
    d_inner: expectPerLayerIntegers(raw['d_inner'], layers, `${at}.d_inner`),
    ...(raw['d_head'] === undefined ? {} : { d_head: expectNumber(raw['d_head'], `${at}.d_head`) }),
    n_token: nToken,
    d_embed: raw['d_embed'] === undefined || raw['d_embed'] === -1 ? dModel : expectInteger(raw['d_embed'], `${at}.d_embed`),
    div_val: raw['div_val'] === undefined ? 1 : expectInteger(raw['div_val'], `${at}.div_val`),
    cutoffs: cutoffs.map((c, i) => expectInteger(c, `${at}.cutoffs[${i}]`)),
    tie_projs: tieProjs.map((t, i) => expectBoolean(t, `${at}.tie_projs[${i}]`)),
    adaptive: raw['adaptive'] === undefined ? false : expectBoolean(raw['adaptive'], `${at}.adaptive`),
    tgt_len: expectInteger(raw['tgt_len'], `${at}.tgt_len`),
    weight_init_std: expectPositiveNumber(raw['weight_init_std'], `${at}.weight_init_std`),
    proj_init_std:
      raw['proj_init_std'] === undefined ? 0.01 : expectPositiveNumber(raw['proj_init_std'], `${at}.proj_init_std`),
    primer_square: raw['primer_square'] === undefined ? false : expectBoolean(raw['primer_square'], `${at}.primer_square`),
  };
  if (!isEntry) return { id, model_config: config };

  const entry: { -readonly [K in keyof LtsEntry]: LtsEntry[K] } = { id, model_config: config };
  if (obj['valid_ppl'] !== undefined) entry.valid_ppl = expectPositiveNumber(obj['valid_ppl'], `${where} (id ${id}): valid_ppl`);
  if (obj['test_ppl'] !== undefined) entry.test_ppl = expectPositiveNumber(obj['test_ppl'], `${where} (id ${id}): test_ppl`);
  if (obj['params'] !== undefined) {
    const params: Record<string, number> = {};
    for (const [key, count] of Object.entries(expectObject(obj['params'], `${where} (id ${id}): params`))) {
      params[key] = expectNumber(count, `${where} (id ${id}): params.${key}`);
    }
    entry.params = params;
  }
  return entry;
}

/** Parameters outside the Attention and FFN modules, split as archai's code creates them. */
export interface LtsOtherParams {
  /** AdaptiveEmbedding (tables and projections) plus the learned position table (`wpe`). */
  readonly embedding: number;
  /** ProjectedAdaptiveLogSoftmax parameters not tied to the embedding. */
  readonly softmax: number;
  /** ln_1 and ln_2 of every block, and ln_f. */
  readonly layerNorm: number;
}

/** `clean_cutoffs` of archai's AdaptiveEmbedding / ProjectedAdaptiveLogSoftmax. */
export function cleanLtsCutoffs(cutoffs: readonly number[], nToken: number): number[] {
  let cleaned = cutoffs.length === 0 ? [nToken] : [...cutoffs];
  let c = 1;
  while (c < cleaned.length) {
    if (cleaned[c]! <= cleaned[c - 1]!) throw new Error(`LTS cutoffs must increase (cutoff ${c} is <= cutoff ${c - 1})`);
    if (cleaned[c]! > nToken) break;
    c++;
  }
  cleaned = cleaned.slice(0, c); // everything from the first cutoff beyond the vocabulary is dropped
  if (cleaned[cleaned.length - 1]! > nToken) cleaned[cleaned.length - 1] = nToken;
  if (cleaned[cleaned.length - 1]! < nToken) cleaned.push(nToken);
  return cleaned;
}

/** Counts the parameters outside the modules, following archai's constructors (see the README). */
export function ltsOtherParams(config: LtsModelConfig): LtsOtherParams {
  const { d_model: dProj, d_embed: dEmbed, div_val: divVal, n_token: nToken } = config;
  const cutoffs = cleanLtsCutoffs(config.cutoffs, nToken);
  const cutoffEnds = [0, ...cutoffs];
  const clusterWidth = (i: number): number => Math.floor(dEmbed / divVal ** i);
  const tieProjs =
    config.tie_projs.length > 0
      ? config.tie_projs.slice(0, cutoffs.length)
      : [!config.adaptive, ...new Array<boolean>(cutoffs.length - 1).fill(true)];
  if (tieProjs.length !== cutoffs.length) {
    throw new Error(`LTS tie_projs lists ${tieProjs.length} clusters, the cutoffs give ${cutoffs.length}`);
  }

  let embedding = config.tgt_len * dProj; // wpe
  if (divVal === 1) {
    embedding += nToken * dEmbed + (dProj !== dEmbed ? dProj * dEmbed : 0);
  } else {
    for (let i = 0; i < cutoffs.length; i++) {
      embedding += (cutoffEnds[i + 1]! - cutoffEnds[i]!) * clusterWidth(i) + dProj * clusterWidth(i);
    }
  }

  // Output weights are tied to the embedding tables (tie_weight); biases, cluster parameters and
  // untied projections are the softmax's own.
  const clusters = cutoffs.length - 1;
  let softmax = nToken + (clusters > 0 ? clusters * dEmbed + clusters : 0);
  for (let i = 0; i < cutoffs.length; i++) {
    if (tieProjs[i] === true) continue;
    if (divVal === 1) {
      if (dProj !== dEmbed) softmax += dProj * dEmbed;
    } else {
      softmax += dProj * clusterWidth(i);
    }
  }

  const layerNorm = (4 * config.n_layer + 2) * dProj;
  return { embedding, softmax, layerNorm };
}

/**
 * Builds the module graph of an LTS GPT-2 architecture. Attention: `c_attn` (d_model x
 * 3 d_model, split into q, k, v) and `c_proj` (o), with biases; heads `n_head[l]`, head size
 * d_model // n_head[l]. FFN: `c_fc` (up) and `c_proj` (down) with biases, width `d_inner[l]`.
 * Weights follow GPT2PreTrainedModel._init_weights in archai's GPT2LMHeadModelFlex: N(0,
 * weight_init_std^2), and both `c_proj` weights N(0, (weight_init_std / sqrt(2 n_layer))^2).
 * Embeddings, adaptive softmax and LayerNorms are counted in `graph.otherParams`.
 */
export function ltsToGraph(entry: LtsEntry, options: LtsGraphOptions = {}): ModuleGraph {
  const config = entry.model_config;
  const d = config.d_model;
  const init = normalInit(config.weight_init_std);
  const residualInit = normalInit(config.weight_init_std / Math.sqrt(2 * config.n_layer));
  const activation = config.primer_square ? 'relu-squared' : 'gelu_new';

  const layers: Layer[] = config.n_head.map((heads, index) => {
    const width = config.d_inner[index]!;
    const prefix = `transformer.h.${index}`;
    const source = { format: 'lts-gpt2', architecture: entry.id, layer: index, detail: { heads, width } };
    const matrix = (name: string, role: WeightMatrix['role'], rows: number, cols: number, std = init): WeightMatrix =>
      drawnMatrix(`${prefix}.${name}`, role, rows, cols, std, source, options.seed);
    const bias = (name: string, role: WeightMatrix['role'], length: number): BiasVector =>
      biasVector(`${prefix}.${name}`, role, length);
    return {
      index,
      attention: {
        kind: 'attention',
        heads,
        kvHeads: heads,
        headDim: Math.floor(d / heads),
        // c_attn is one Conv1D (d x 3d) drawn i.i.d.; its three column blocks are q, k and v.
        matrices: [
          matrix('attn.c_attn.weight[q]', 'q', d, d),
          matrix('attn.c_attn.weight[k]', 'k', d, d),
          matrix('attn.c_attn.weight[v]', 'v', d, d),
          matrix('attn.c_proj.weight', 'o', d, d, residualInit),
        ],
        biases: [
          bias('attn.c_attn.bias[q]', 'q', d),
          bias('attn.c_attn.bias[k]', 'k', d),
          bias('attn.c_attn.bias[v]', 'v', d),
          bias('attn.c_proj.bias', 'o', d),
        ],
      },
      ffn: {
        width,
        activation,
        matrices: [matrix('mlp.c_fc.weight', 'up', d, width), matrix('mlp.c_proj.weight', 'down', width, d, residualInit)],
        biases: [bias('mlp.c_fc.bias', 'up', width), bias('mlp.c_proj.bias', 'down', d)],
      },
    };
  });

  const other = ltsOtherParams(config);
  return {
    name: entry.id,
    family: 'lts-gpt2',
    hiddenSize: d,
    layers,
    otherParams: other.embedding + other.softmax + other.layerNorm,
  };
}
