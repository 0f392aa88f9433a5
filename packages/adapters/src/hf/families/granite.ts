import { LLAMA_KEYS } from './llama';
import type { FamilyDefinition } from './registry';

export const granite: FamilyDefinition = {
  modelType: 'granite',
  title: 'Granite',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'LLaMA with four scalars (embedding, residual and attention multipliers, logits scaling), none tied to head counts',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'separate' },
  keys: LLAMA_KEYS,
  writesHeadDim: true,
};
