import { BERT_KEYS } from './bert';
import type { FamilyDefinition } from './registry';
import { paddingOffset } from './roberta';

export const xlmRoberta: FamilyDefinition = {
  modelType: 'xlm-roberta',
  title: 'XLM-RoBERTa',
  group: 'encoder',
  decoder: false,
  pipelines: ['feature-extraction', 'fill-mask'],
  special: 'the RoBERTa graph with a SentencePiece vocabulary; the masked-LM head (lm_head) is a head',
  traits: { norm: 'layer', ffn: 'plain', positions: 'learned', qkv: 'separate' },
  keys: BERT_KEYS,
  positionOffset: paddingOffset,
};
