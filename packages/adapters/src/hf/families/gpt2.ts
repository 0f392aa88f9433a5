import type { FamilyDefinition } from './registry';

export const gpt2: FamilyDefinition = {
  modelType: 'gpt2',
  title: 'GPT-2',
  group: 'gpt2',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'fused c_attn cut by a Split into q, k, v; Conv1D as MatMul+Add or Gemm; learned positions',
  traits: { norm: 'layer', ffn: 'plain', positions: 'learned', qkv: 'fused' },
  keys: {
    layers: ['n_layer', 'num_hidden_layers'],
    hidden: ['n_embd', 'hidden_size'],
    heads: ['n_head', 'num_attention_heads'],
    ffnWidth: ['n_inner'],
    ffnWidthDefault: (hidden) => 4 * hidden,
    activation: ['activation_function'],
    activationDefault: 'gelu_new',
  },
};
