import { LLAMA_KEYS } from './llama';
import type { FamilyDefinition } from './registry';

export const phi3: FamilyDefinition = {
  modelType: 'phi3',
  title: 'Phi-3',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'packed qkv_proj [q | k | v] cut by Slices and packed gate_up_proj chunked [gate | up]; partial rotary',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'fused' },
  keys: LLAMA_KEYS,
  packedQkv: 'concatenated',
  packedGateUp: 'gate-first',
  writesHeadDim: true,
};
