/**
 * FlexiBERT (NAS-Bench-BERT) architectures as the benchmark's metric code built them.
 *
 * The parameter counts and zero-cost proxies published with the benchmark
 * (aaronserianni/training-free-nas, `BERT_metrics.ipynb`) come from
 * `ElectraModel(ElectraConfig(nas_config=..., num_hidden_layers=len(encoder_layers)))` in that
 * repository's `modeling_electra.py` / `configuration_electra.py`. Only `nas_config` reaches the
 * config, so every model has the config defaults: hidden 256, intermediate 1024 in every layer,
 * embedding 128, vocabulary 30522, 512 positions, 2 token types, conv head ratio 2,
 * initializer_range 0.02. The entry's `hidden_size` and each layer's `feed_forward_dimension`
 * are NOT applied. The README ("Architecture specs") lists the construction layer by layer.
 */
import type { AttentionModule, BiasVector, FfnModule, Layer, ModuleGraph, WeightMatrix } from '@zerolm/core';
import { biasVector, drawnMatrix, normalInit } from './weights';
import {
  describeValue,
  expectArray,
  expectInteger,
  expectNumber,
  expectObject,
  isObject,
  type JsonObject,
} from './validate';

export type FlexibertOperationType = 'SA' | 'LT' | 'DSC';

/** One `nas_config.encoder_layers[]` item, as the benchmark JSON writes it. */
export interface FlexibertEncoderLayer {
  /** SA: self-attention; LT: linear transform (Fourier/cosine); DSC: dynamic separable convolution. */
  readonly operation_type: FlexibertOperationType;
  /** SA: `SDP` or `WMA`; LT: `DFT` or `DCT`; DSC: the kernel size (an integer). */
  readonly operation_parameter: string | number;
  readonly num_operation_heads: number;
  /** Declared FFN width; the metric code ignored it (see the file comment). */
  readonly feed_forward_dimension: number;
  /** Number of stacked FFN layers before the output projection. */
  readonly num_feed_forward: number;
}

/** A FlexiBERT benchmark entry (the fields this adapter reads; other fields are dropped). */
export interface FlexibertEntry {
  readonly id: number | string;
  /** The 8 GLUE task scores and their average `glue`; absent in a bare architecture spec. */
  readonly scores?: Readonly<Record<string, number>>;
  readonly hparams: {
    readonly model_hparam_overrides: {
      /** Declared hidden size; the metric code ignored it. */
      readonly hidden_size: number;
      readonly nas_config: { readonly encoder_layers: readonly FlexibertEncoderLayer[] };
    };
  };
}

/** The `ElectraConfig` defaults the metric code built every model with. */
export const FLEXIBERT_METRIC_CONFIG = {
  hiddenSize: 256,
  intermediateSize: 1024,
  embeddingSize: 128,
  vocabSize: 30522,
  maxPositionEmbeddings: 512,
  typeVocabSize: 2,
  convHeadRatio: 2,
  initializerRange: 0.02,
  hiddenAct: 'gelu',
} as const;

export interface FlexibertGraphOptions {
  /**
   * `metric-code` (default): the dimensions the benchmark's metric code used (hidden 256,
   * intermediate 1024 everywhere); this reproduces the published parameter counts exactly.
   * `declared`: the same construction with the entry's `hidden_size` and each layer's
   * `feed_forward_dimension` applied. No published count exists to check that variant against.
   */
  readonly dimensions?: 'metric-code' | 'declared';
  /** Extra seed text, to draw a different (still reproducible) set of weights. */
  readonly seed?: string;
}

/** Checks that `value` is a FlexiBERT entry and returns the typed fields the adapter reads. */
export function parseFlexibertEntry(value: unknown, where = 'FlexiBERT entry'): FlexibertEntry {
  const entry = expectObject(value, where);
  const id = entry['id'];
  if (typeof id !== 'number' && typeof id !== 'string') {
    throw new Error(`${where}: id must be a number or a string (got ${describeValue(id)})`);
  }
  const at = `${where} (id ${id})`;
  const overrides = expectObject(
    expectObject(entry['hparams'], `${at}: hparams`)['model_hparam_overrides'],
    `${at}: hparams.model_hparam_overrides`,
  );
  const hiddenSize = expectInteger(overrides['hidden_size'], `${at}: hparams.model_hparam_overrides.hidden_size`);
  const nasConfig = expectObject(overrides['nas_config'], `${at}: hparams.model_hparam_overrides.nas_config`);
  const layersAt = `${at}: hparams.model_hparam_overrides.nas_config.encoder_layers`;
  const rawLayers = expectArray(nasConfig['encoder_layers'], layersAt);
  if (rawLayers.length === 0) throw new Error(`${layersAt} must list at least one layer`);
  const layers = rawLayers.map((raw, i) => parseEncoderLayer(raw, `${layersAt}[${i}]`));
  let scores: Record<string, number> | undefined;
  if (entry['scores'] !== undefined) {
    const rawScores = expectObject(entry['scores'], `${at}: scores`);
    scores = {};
    for (const [task, score] of Object.entries(rawScores)) scores[task] = expectNumber(score, `${at}: scores.${task}`);
  }
  return {
    id,
    ...(scores === undefined ? {} : { scores }),
    hparams: { model_hparam_overrides: { hidden_size: hiddenSize, nas_config: { encoder_layers: layers } } },
  };
}

function parseEncoderLayer(value: unknown, where: string): FlexibertEncoderLayer {
  const layer = expectObject(value, where);
  const type = layer['operation_type'];
  const parameter = layer['operation_parameter'];
  if (type === 'SA') {
    if (parameter !== 'SDP' && parameter !== 'WMA') {
      throw new Error(`${where}.operation_parameter must be SDP or WMA for SA (got ${describeValue(parameter)})`);
    }
  } else if (type === 'LT') {
    if (parameter !== 'DFT' && parameter !== 'DCT') {
      throw new Error(`${where}.operation_parameter must be DFT or DCT for LT (got ${describeValue(parameter)})`);
    }
  } else if (type === 'DSC') {
    expectInteger(parameter, `${where}.operation_parameter (DSC kernel size)`);
  } else {
    throw new Error(`${where}.operation_type must be one of SA, LT, DSC (got ${describeValue(type)})`);
  }
  return {
    operation_type: type,
    operation_parameter: parameter as string | number,
    num_operation_heads: expectInteger(layer['num_operation_heads'], `${where}.num_operation_heads`),
    feed_forward_dimension: expectInteger(layer['feed_forward_dimension'], `${where}.feed_forward_dimension`),
    num_feed_forward: expectInteger(layer['num_feed_forward'], `${where}.num_feed_forward`),
  };
}

/** Whether `value` has the shape of a FlexiBERT entry (used by spec detection; not a full check). */
export function looksLikeFlexibertEntry(value: unknown): value is JsonObject {
  if (!isObject(value) || !isObject(value['hparams'])) return false;
  const overrides = value['hparams']['model_hparam_overrides'];
  return isObject(overrides) && isObject(overrides['nas_config']) && 'encoder_layers' in overrides['nas_config'];
}

/**
 * Builds the module graph of a FlexiBERT architecture the way the benchmark's metric code built
 * it (`ElectraModel`, without pooler or heads). All weight matrices are drawn from
 * N(0, 0.02^2): `nn.Linear` through `ElectraPreTrainedModel._init_weights`, the separable
 * convolution's depthwise and pointwise kernels by `SeparableConv1D.__init__`. Biases are zero.
 *
 * Token mixers: SA -> kind `attention` (q, k, v, o; WMA adds its bilinear `weight` as `mix`);
 * LT -> kind `dft`/`dct` (its one `input` projection as `mix`; LT layers have no output dense
 * and no LayerNorm in this code); DSC -> kind `dsc` (q, k, v for the attention heads, the
 * separable convolution, `conv_kernel_layer` and `conv_out_layer` as `mix`, and o).
 * The FFN stack (`dense_in`, `num_feed_forward - 1` square `dense_list` layers, `output.dense`)
 * is one FFN module: every matrix before the last activation has role `up`, the output
 * projection `down`. LayerNorms and embeddings are counted in `graph.otherParams`.
 */
export function flexibertToGraph(entry: FlexibertEntry, options: FlexibertGraphOptions = {}): ModuleGraph {
  const config = FLEXIBERT_METRIC_CONFIG;
  const declared = options.dimensions === 'declared';
  const hidden = declared ? entry.hparams.model_hparam_overrides.hidden_size : config.hiddenSize;
  const init = normalInit(config.initializerRange);
  const architecture = String(entry.id);
  const encoderLayers = entry.hparams.model_hparam_overrides.nas_config.encoder_layers;

  const embeddingSize = config.embeddingSize;
  let otherParams =
    (config.vocabSize + config.maxPositionEmbeddings + config.typeVocabSize) * embeddingSize +
    2 * embeddingSize; // embeddings.LayerNorm
  if (embeddingSize !== hidden) otherParams += embeddingSize * hidden + hidden; // embeddings_project

  const layers: Layer[] = encoderLayers.map((spec, index) => {
    const intermediate = declared ? spec.feed_forward_dimension : config.intermediateSize;
    const prefix = `encoder.layer.${index}`;
    const detail = {
      operation: spec.operation_type,
      parameter: spec.operation_parameter,
      heads: spec.num_operation_heads,
    };
    const matrix = (name: string, role: WeightMatrix['role'], rows: number, cols: number): WeightMatrix =>
      drawnMatrix(
        `${prefix}.${name}`,
        role,
        rows,
        cols,
        init,
        { format: 'flexibert', architecture, layer: index, detail },
        options.seed,
      );
    const bias = (name: string, role: WeightMatrix['role'], length: number): BiasVector =>
      biasVector(`${prefix}.${name}`, role, length);

    const mixer = buildTokenMixer(spec, hidden, config.convHeadRatio, matrix, bias);
    otherParams += mixer.layerNormParams;

    const ffnMatrices: WeightMatrix[] = [matrix('intermediate.dense_in.weight', 'up', hidden, intermediate)];
    const ffnBiases: BiasVector[] = [bias('intermediate.dense_in.bias', 'up', intermediate)];
    for (let j = 0; j < spec.num_feed_forward - 1; j++) {
      ffnMatrices.push(matrix(`intermediate.dense_list.${j}.weight`, 'up', intermediate, intermediate));
      ffnBiases.push(bias(`intermediate.dense_list.${j}.bias`, 'up', intermediate));
    }
    ffnMatrices.push(matrix('output.dense.weight', 'down', intermediate, hidden));
    ffnBiases.push(bias('output.dense.bias', 'down', hidden));
    otherParams += 2 * hidden; // output.LayerNorm
    const ffn: FfnModule = { width: intermediate, activation: config.hiddenAct, matrices: ffnMatrices, biases: ffnBiases };

    return { index, attention: mixer.module, ffn };
  });

  return {
    name: `flexibert-${architecture}`,
    family: 'flexibert',
    hiddenSize: hidden,
    layers,
    otherParams,
  };
}

type MatrixMaker = (name: string, role: WeightMatrix['role'], rows: number, cols: number) => WeightMatrix;
type BiasMaker = (name: string, role: WeightMatrix['role'], length: number) => BiasVector;

/** The token-mixing module of one layer, and the LayerNorm parameters that close it (if any). */
function buildTokenMixer(
  spec: FlexibertEncoderLayer,
  hidden: number,
  convHeadRatio: number,
  matrix: MatrixMaker,
  bias: BiasMaker,
): { module: AttentionModule; layerNormParams: number } {
  const heads = spec.num_operation_heads;
  switch (spec.operation_type) {
    case 'SA': {
      // ElectraScaledDotProductAttention / ElectraWeightedMultiplcativeAttention + ElectraSelfOutput.
      const headDim = Math.floor(hidden / heads);
      const allHeads = heads * headDim;
      const op = 'operation.operation';
      const matrices = [
        matrix(`${op}.query.weight`, 'q', hidden, allHeads),
        matrix(`${op}.key.weight`, 'k', hidden, allHeads),
        matrix(`${op}.value.weight`, 'v', hidden, allHeads),
      ];
      if (spec.operation_parameter === 'WMA') matrices.push(matrix(`${op}.weight.weight`, 'mix', allHeads, allHeads));
      matrices.push(matrix('operation.output.dense.weight', 'o', hidden, hidden));
      const biases = [
        bias(`${op}.query.bias`, 'q', allHeads),
        bias(`${op}.key.bias`, 'k', allHeads),
        bias(`${op}.value.bias`, 'v', allHeads),
        bias('operation.output.dense.bias', 'o', hidden),
      ];
      return { module: { kind: 'attention', heads, kvHeads: heads, headDim, matrices, biases }, layerNormParams: 2 * hidden };
    }
    case 'LT': {
      // ElectraLinearTransform -> ElectraDiscreteFourierTransform / ElectraDiscreteCosineTransform:
      // one input projection, then a parameter-free 2-D transform per head; no output dense, no LayerNorm.
      const headDim = Math.floor(hidden / heads);
      const allHeads = heads * headDim;
      const kind = spec.operation_parameter === 'DFT' ? 'dft' : 'dct';
      return {
        module: {
          kind,
          heads,
          kvHeads: heads,
          headDim,
          matrices: [matrix('operation.operation.input.weight', 'mix', hidden, allHeads)],
          biases: [bias('operation.operation.input.bias', 'mix', allHeads)],
        },
        layerNormParams: 0,
      };
    }
    case 'DSC': {
      // ElectraConvSelfAttention (from ConvBERT) + ElectraSelfOutput. The heads are split between
      // self-attention and convolution: num_operation_heads // conv_head_ratio (at least 1) of each,
      // with head size hidden // num_operation_heads.
      const kernel = spec.operation_parameter as number;
      const attentionHeads = Math.max(1, Math.floor(heads / convHeadRatio));
      if (hidden % attentionHeads !== 0) {
        throw new Error(`DSC layer: hidden size ${hidden} is not divisible by its ${attentionHeads} attention heads`);
      }
      const headDim = Math.floor(hidden / heads);
      const allHeads = attentionHeads * headDim;
      const op = 'operation.operation';
      const matrices = [
        matrix(`${op}.query.weight`, 'q', hidden, allHeads),
        matrix(`${op}.key.weight`, 'k', hidden, allHeads),
        matrix(`${op}.value.weight`, 'v', hidden, allHeads),
        // Depthwise Conv1d(hidden, hidden, kernel, groups=hidden): weight (hidden, 1, kernel),
        // reshaped to (out, in * kernel) and stored input-major: kernel x hidden.
        matrix(`${op}.key_conv_attn_layer.depthwise.weight`, 'mix', kernel, hidden),
        // Pointwise Conv1d(hidden, allHeads, 1): weight (allHeads, hidden, 1) -> hidden x allHeads.
        matrix(`${op}.key_conv_attn_layer.pointwise.weight`, 'mix', hidden, allHeads),
        matrix(`${op}.conv_kernel_layer.weight`, 'mix', allHeads, attentionHeads * kernel),
        matrix(`${op}.conv_out_layer.weight`, 'mix', hidden, allHeads),
        matrix('operation.output.dense.weight', 'o', hidden, hidden),
      ];
      const biases = [
        bias(`${op}.query.bias`, 'q', allHeads),
        bias(`${op}.key.bias`, 'k', allHeads),
        bias(`${op}.value.bias`, 'v', allHeads),
        bias(`${op}.key_conv_attn_layer.bias`, 'mix', allHeads),
        bias(`${op}.conv_kernel_layer.bias`, 'mix', attentionHeads * kernel),
        bias(`${op}.conv_out_layer.bias`, 'mix', allHeads),
        bias('operation.output.dense.bias', 'o', hidden),
      ];
      return {
        module: { kind: 'dsc', heads: attentionHeads, kvHeads: attentionHeads, headDim, matrices, biases },
        layerNormParams: 2 * hidden,
      };
    }
  }
}
