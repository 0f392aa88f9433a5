import { LLAMA_KEYS } from './llama';
import type { FamilyDefinition } from './registry';

export const mistral: FamilyDefinition = {
  modelType: 'mistral',
  title: 'Mistral',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'LLaMA with sliding-window attention (a mask only: nothing to prune differently)',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'separate' },
  keys: LLAMA_KEYS,
  writesHeadDim: true,
};
