import type { FamilyDefinition } from './registry';

export const distilbert: FamilyDefinition = {
  modelType: 'distilbert',
  title: 'DistilBERT',
  group: 'encoder',
  decoder: false,
  pipelines: ['feature-extraction', 'fill-mask'],
  special: 'its own config keys (n_layers, dim, n_heads, hidden_dim); q scaled before the product',
  traits: { norm: 'layer', ffn: 'plain', positions: 'learned', qkv: 'separate' },
  keys: {
    layers: ['n_layers'],
    hidden: ['dim'],
    heads: ['n_heads'],
    ffnWidth: ['hidden_dim'],
    activation: ['activation'],
    activationDefault: 'gelu',
  },
};
