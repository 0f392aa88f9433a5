/**
 * The ways an ONNX graph of a transformer is written that the matcher reads, as a registry: the
 * README's list of graph styles is generated from it (`graphStylesMarkdown`), and `graphStyle`
 * names the style of a matched graph.
 */
import type { GraphMatch } from './match';

export interface GraphStyle {
  readonly name: string;
  /** Who writes graphs this way. */
  readonly writer: string;
  /** How the attention, norms and activations appear. */
  readonly ops: string;
  /** Whether the matched graph is written this way. */
  readonly detect: (match: GraphMatch) => boolean;
}

const fusedOps = (match: GraphMatch) => new Set(match.layers.map((l) => l.attention.fused?.op).filter((op): op is string => !!op));

export const GRAPH_STYLES: readonly GraphStyle[] = [
  {
    name: 'torch.onnx',
    writer: 'optimum / torch.onnx (TorchScript) exports, transformers.js conversions, their q8 and fp16 files',
    ops: 'MatMul (+Add bias) or Gemm projections, eager attention around a Softmax, LayerNormalization or its decomposition, decomposed RMSNorm and GELU; Identity aliases of deduplicated parameters',
    detect: (match) => fusedOps(match).size === 0,
  },
  {
    name: 'onnxruntime-genai',
    writer: "onnxruntime-genai's model builder (fp32 and int4 decoders)",
    ops: 'com.microsoft GroupQueryAttention (packed q|k|v or separate inputs, rotary tables or RotaryEmbedding), SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization, MatMulNBits',
    detect: (match) => fusedOps(match).has('GroupQueryAttention'),
  },
  {
    name: 'onnxruntime-optimizer',
    writer: "onnxruntime's transformer optimizer (optimizer.py, model type bert)",
    ops: 'com.microsoft Attention (packed q|k|v weight and bias) or MultiHeadAttention (packed bias), EmbedLayerNormalization, SkipLayerNormalization (bias input), BiasGelu, FastGelu, QuickGelu',
    detect: (match) => fusedOps(match).has('Attention') || fusedOps(match).has('MultiHeadAttention'),
  },
];

/** The style a matched graph is written in. */
export function graphStyle(match: GraphMatch): string {
  return GRAPH_STYLES.find((s) => s.detect(match))?.name ?? 'torch.onnx';
}

export function graphStylesMarkdown(): string {
  return ['| graph style | written by | what the matcher reads |', '|---|---|---|', ...GRAPH_STYLES.map((s) => `| ${s.name} | ${s.writer} | ${s.ops} |`)].join('\n');
}
