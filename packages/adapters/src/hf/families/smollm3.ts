import { LLAMA_KEYS } from './llama';
import type { FamilyDefinition } from './registry';

export const smollm3: FamilyDefinition = {
  modelType: 'smollm3',
  title: 'SmolLM3',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'LLaMA whose NoPE layers (no_rope_layers[i] = 0) skip RoPE; the per-layer list follows dropped layers',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'separate' },
  keys: LLAMA_KEYS,
  perLayerKeys: ['no_rope_layers'],
  writesHeadDim: true,
};
