import { LLAMA_KEYS } from './llama';
import type { FamilyDefinition } from './registry';

export const qwen3: FamilyDefinition = {
  modelType: 'qwen3',
  title: 'Qwen3',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'LLaMA with per-head q/k RMSNorm (weight [head_dim], untouched by head pruning); explicit head_dim',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'separate' },
  keys: LLAMA_KEYS,
  writesHeadDim: true,
};
