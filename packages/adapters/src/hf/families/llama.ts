import type { FamilyDefinition } from './registry';

/** The LLaMA layout of config keys, shared by the decoders built like it. */
export const LLAMA_KEYS: FamilyDefinition['keys'] = {
  layers: ['num_hidden_layers'],
  hidden: ['hidden_size'],
  heads: ['num_attention_heads'],
  kvHeads: ['num_key_value_heads'],
  ffnWidth: ['intermediate_size'],
  headDim: 'head_dim',
  activation: ['hidden_act'],
  activationDefault: 'silu',
};

export const llama: FamilyDefinition = {
  modelType: 'llama',
  title: 'LLaMA',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'RMSNorm, RoPE, SwiGLU (gate/up/down), grouped-query attention',
  traits: { norm: 'rms', ffn: 'gated', positions: 'rotary', qkv: 'separate' },
  keys: LLAMA_KEYS,
  writesHeadDim: true,
};
