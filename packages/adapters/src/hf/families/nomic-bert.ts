import type { FamilyDefinition } from './registry';

export const nomicBert: FamilyDefinition = {
  modelType: 'nomic_bert',
  title: 'Nomic BERT',
  group: 'encoder',
  decoder: false,
  pipelines: ['feature-extraction'],
  special: 'remote code with GPT-2 config keys (n_embd, n_head, n_inner); post-norm; Wqkv rearranged (three h d); RoPE; SwiGLU fc11 * silu(fc12); no biases',
  traits: { norm: 'layer', ffn: 'gated', positions: 'rotary', qkv: 'fused' },
  keys: {
    layers: ['n_layer', 'num_hidden_layers'],
    hidden: ['n_embd', 'hidden_size'],
    heads: ['n_head', 'num_attention_heads'],
    ffnWidth: ['n_inner', 'intermediate_size'],
    activation: ['activation_function'],
    activationDefault: 'swiglu',
  },
  packedQkv: 'concatenated',
};
