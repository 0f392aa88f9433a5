import { BERT_KEYS } from './bert';
import type { FamilyDefinition } from './registry';

export const electra: FamilyDefinition = {
  modelType: 'electra',
  title: 'ELECTRA',
  group: 'encoder',
  decoder: false,
  pipelines: ['feature-extraction', 'fill-mask'],
  special: 'BERT whose embedding projection (embedding_size -> hidden) stays outside the layers',
  traits: { norm: 'layer', ffn: 'plain', positions: 'learned', qkv: 'separate' },
  keys: BERT_KEYS,
};
