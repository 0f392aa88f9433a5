/**
 * What to tell the user of a model whose `model_type` no family file covers: the supported family
 * its graph looks most like (by the structural traits every family declares), and what in its
 * graph the matcher did not recognise. Read from the graph alone, so it works for any export.
 */
import { GraphIndex, loadModel, type NodeProto } from '@zerolm/onnx';
import { dirname } from 'path';
import { registeredFamilies, type FamilyDefinition, type FamilyTraits } from './families';
import { matchGraph, type GraphMatch } from './match';

/** Ops the matcher and the supported export styles account for; others are named as not recognised. */
const KNOWN_OPS = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Reciprocal', 'Neg', 'Abs', 'Erf', 'Tanh', 'Sigmoid', 'Relu', 'Gelu', 'Softmax', 'Exp', 'Log',
  'MatMul', 'Gemm', 'MatMulInteger', 'MatMulNBits', 'DynamicQuantizeLinear', 'DequantizeLinear', 'QuantizeLinear',
  'ReduceMean', 'ReduceSum', 'ReduceMax', 'LayerNormalization', 'SimplifiedLayerNormalization', 'SkipLayerNormalization',
  'SkipSimplifiedLayerNormalization', 'EmbedLayerNormalization', 'FastGelu', 'BiasGelu', 'QuickGelu', 'BiasSplitGelu',
  'Attention', 'MultiHeadAttention', 'GroupQueryAttention', 'RotaryEmbedding',
  'Reshape', 'Transpose', 'Unsqueeze', 'Squeeze', 'Concat', 'Split', 'Slice', 'Gather', 'Expand', 'Tile', 'Shape', 'Size',
  'ConstantOfShape', 'Constant', 'Range', 'Cast', 'Identity', 'Where', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual',
  'Not', 'And', 'Or', 'CumSum', 'Trilu', 'Cos', 'Sin', 'Max', 'Min', 'Clip', 'Floor', 'Ceil', 'Dropout', 'Flatten', 'IsNaN', 'Softplus',
]);

/** The traits of a graph, where it tells them (undefined where it does not). */
export function graphTraits(index: GraphIndex, match: GraphMatch | undefined): Partial<FamilyTraits> & { decoder: boolean } {
  const ops = new Set(index.graph.node.map((n) => n.opType ?? ''));
  const decoder = index.graph.input.some((i) => /^past_key_values\./.test(i.name ?? ''));
  const traits: { -readonly [K in keyof FamilyTraits]?: FamilyTraits[K] } & { decoder: boolean } = { decoder };
  const layerNorm = ops.has('LayerNormalization') || ops.has('SkipLayerNormalization') || ops.has('EmbedLayerNormalization') || hasMeanCentering(index);
  const rmsNorm = ops.has('SimplifiedLayerNormalization') || ops.has('SkipSimplifiedLayerNormalization') || (!layerNorm && ops.has('Pow') && ops.has('ReduceMean'));
  if (layerNorm !== rmsNorm) traits.norm = rmsNorm ? 'rms' : 'layer';
  if (ops.has('Cos') || ops.has('Sin') || ops.has('RotaryEmbedding') || ops.has('GroupQueryAttention')) traits.positions = 'rotary';
  else if (index.graph.initializer.some((t) => /position/.test(t.name ?? ''))) traits.positions = 'learned';
  if (match) {
    traits.ffn = match.layers.some((l) => l.ffn.gate) ? 'gated' : 'plain';
    traits.qkv = match.layers.some((l) => l.attention.q.multiply === l.attention.k.multiply) ? 'fused' : 'separate';
  }
  return traits;
}

/** A LayerNorm decomposed by torch: `Sub(x, ReduceMean(x))`. */
function hasMeanCentering(index: GraphIndex): boolean {
  return index.graph.node.some((n: NodeProto) => n.opType === 'Sub' && n.input.some((i) => index.producer(i ?? '')?.opType === 'ReduceMean'));
}

function describeTraits(family: FamilyDefinition): string {
  const t = family.traits;
  return [
    family.decoder ? 'decoder' : 'encoder',
    t.norm === 'rms' ? 'RMSNorm' : 'LayerNorm',
    `${t.positions} positions`,
    t.ffn === 'gated' ? 'gated FFN' : 'plain FFN',
    t.qkv === 'fused' ? 'fused q/k/v' : 'separate q/k/v',
  ].join(', ');
}

/** The supported family whose traits agree most with the graph's (same kind first, then registration order). */
export function closestFamily(traits: Partial<FamilyTraits> & { decoder: boolean }): FamilyDefinition {
  let best: FamilyDefinition | undefined;
  let bestScore = -1;
  for (const family of registeredFamilies()) {
    let score = family.decoder === traits.decoder ? 10 : 0;
    for (const key of ['norm', 'ffn', 'positions', 'qkv'] as const) if (traits[key] !== undefined && traits[key] === family.traits[key]) score++;
    if (score > bestScore) {
      best = family;
      bestScore = score;
    }
  }
  return best!;
}

/**
 * The one-line error for an unsupported model_type: the closest supported family and what in the
 * graph (`file`) was not recognised.
 */
export function unsupportedFamilyMessage(modelType: string, where: string, file: string | undefined): string {
  const supported = registeredFamilies().map((f) => f.modelType).join(', ');
  const head = `unsupported model family "${modelType}" (${where}); supported: ${supported}`;
  if (!file) return head;
  let index: GraphIndex;
  try {
    const onnx = loadModel(file);
    index = new GraphIndex(onnx.model.graph!);
  } catch {
    return head;
  }
  let match: GraphMatch | undefined;
  let failure: string | undefined;
  try {
    match = matchGraph(index, dirname(file));
  } catch (error) {
    failure = (error as Error).message;
  }
  const closest = closestFamily(graphTraits(index, match));
  const unknown = [...new Set(index.graph.node.map((n) => n.opType ?? ''))].filter((op) => !KNOWN_OPS.has(op)).sort();
  const graph = match
    ? `its graph maps to ${match.layers.length} layers of attention and FFN${unknown.length ? `; ops not recognised: ${unknown.join(', ')}` : ''}`
    : `its graph was not recognised: ${failure}${unknown.length ? `; unknown ops: ${unknown.join(', ')}` : ''}`;
  return `${head}; closest supported: ${closest.modelType} (${describeTraits(closest)}); ${graph}`;
}
