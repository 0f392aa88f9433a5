import { LLAMA_KEYS } from './llama';
import type { FamilyDefinition } from './registry';

export const olmo2: FamilyDefinition = {
  modelType: 'olmo2',
  title: 'OLMo 2',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special:
    'no pre-norms: RMSNorm of each sublayer output before the residual add; q/k RMSNorm over the whole projection, so head pruning slices its weight and keeps its divisor (exact for removed units that are zero)',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'separate' },
  keys: LLAMA_KEYS,
  writesHeadDim: true,
};
