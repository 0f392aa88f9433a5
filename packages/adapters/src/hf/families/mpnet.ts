import { BERT_KEYS } from './bert';
import type { FamilyDefinition } from './registry';

export const mpnet: FamilyDefinition = {
  modelType: 'mpnet',
  title: 'MPNet',
  group: 'encoder',
  decoder: false,
  pipelines: ['feature-extraction', 'fill-mask'],
  special: 'post-norm BERT layers plus one relative position bias [buckets, heads] added to every layer; head pruning gives each layer its kept heads of it',
  traits: { norm: 'layer', ffn: 'plain', positions: 'relative', qkv: 'separate' },
  keys: BERT_KEYS,
  // The modeling code hard-codes padding_idx 1: positions start at 2.
  positionOffset: () => 2,
};
