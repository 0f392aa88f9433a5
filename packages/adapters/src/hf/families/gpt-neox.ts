import type { FamilyDefinition } from './registry';

export const gptNeox: FamilyDefinition = {
  modelType: 'gpt_neox',
  title: 'GPT-NeoX (Pythia)',
  group: 'llama',
  decoder: true,
  pipelines: ['text-generation'],
  special: 'query_key_value packed per head ([heads, 3, head_size]); parallel residual; partial rotary; LayerNorm and biases; head size derived (zerolm.headDim after pruning)',
  traits: { norm: 'layer', ffn: 'plain', positions: 'rotary', qkv: 'fused' },
  keys: {
    layers: ['num_hidden_layers'],
    hidden: ['hidden_size'],
    heads: ['num_attention_heads'],
    ffnWidth: ['intermediate_size'],
    activation: ['hidden_act'],
    activationDefault: 'gelu',
  },
  packedQkv: 'per-head',
};
