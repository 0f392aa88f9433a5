import { GEMMA_KEYS } from './gemma2';
import type { FamilyDefinition } from './registry';

export const gemma3Text: FamilyDefinition = {
  modelType: 'gemma3_text',
  title: 'Gemma 3 (text)',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'Gemma 2 without softcaps, with per-head (1 + w) q/k norms and a local RoPE base on sliding layers (layer_types)',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'separate' },
  keys: GEMMA_KEYS,
  writesHeadDim: true,
};
