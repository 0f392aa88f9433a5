import type { FamilyDefinition } from './registry';

export const modernbert: FamilyDefinition = {
  modelType: 'modernbert',
  title: 'ModernBERT',
  group: 'encoder',
  decoder: false,
  pipelines: ['feature-extraction', 'fill-mask'],
  special: 'pre-norm, no biases; Wqkv viewed (3, heads, head_dim) and unbound; GeGLU Wi chunked [input | gate]; RoPE with global and local bases',
  traits: { norm: 'layer', ffn: 'gated', positions: 'rotary', qkv: 'fused' },
  keys: {
    layers: ['num_hidden_layers'],
    hidden: ['hidden_size'],
    heads: ['num_attention_heads'],
    ffnWidth: ['intermediate_size'],
    activation: ['hidden_activation'],
    activationDefault: 'gelu',
  },
  packedQkv: 'concatenated',
  packedGateUp: 'activation-first',
};
