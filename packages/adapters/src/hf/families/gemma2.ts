import { LLAMA_KEYS } from './llama';
import type { FamilyDefinition } from './registry';

/** Gemma's keys: LLaMA's with the activation under `hidden_activation`. */
export const GEMMA_KEYS: FamilyDefinition['keys'] = {
  ...LLAMA_KEYS,
  activation: ['hidden_activation', 'hidden_act'],
  activationDefault: 'gelu_pytorch_tanh',
};

export const gemma2: FamilyDefinition = {
  modelType: 'gemma2',
  title: 'Gemma 2',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: '(1 + w) RMSNorms before and after each sublayer, GeGLU, embeddings times sqrt(hidden), attention and final-logit softcaps; scale query_pre_attn_scalar^-0.5',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'separate' },
  keys: GEMMA_KEYS,
  writesHeadDim: true,
};
