import type { FamilyDefinition } from './registry';

/** The BERT layout every post-norm encoder here shares (`num_hidden_layers`, `intermediate_size`, ...). */
export const BERT_KEYS: FamilyDefinition['keys'] = {
  layers: ['num_hidden_layers'],
  hidden: ['hidden_size'],
  heads: ['num_attention_heads'],
  ffnWidth: ['intermediate_size'],
  activation: ['hidden_act'],
  activationDefault: 'gelu',
};

export const bert: FamilyDefinition = {
  modelType: 'bert',
  title: 'BERT',
  group: 'encoder',
  decoder: false,
  pipelines: ['feature-extraction', 'fill-mask'],
  special: 'post-norm; biases everywhere; the masked-LM head is a head',
  traits: { norm: 'layer', ffn: 'plain', positions: 'learned', qkv: 'separate' },
  keys: BERT_KEYS,
};
