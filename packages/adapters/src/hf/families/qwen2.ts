import { LLAMA_KEYS } from './llama';
import type { FamilyDefinition } from './registry';

export const qwen2: FamilyDefinition = {
  modelType: 'qwen2',
  title: 'Qwen2',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'LLaMA with q/k/v biases',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'separate' },
  keys: LLAMA_KEYS,
  writesHeadDim: true,
};
