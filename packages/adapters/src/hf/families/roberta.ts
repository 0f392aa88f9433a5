import { BERT_KEYS } from './bert';
import type { FamilyDefinition } from './registry';

/** RoBERTa numbers positions from `pad_token_id + 1`: that many rows of the table are not positions. */
export function paddingOffset(raw: Readonly<Record<string, unknown>>): number {
  const pad = raw['pad_token_id'];
  return (typeof pad === 'number' ? pad : 1) + 1;
}

export const roberta: FamilyDefinition = {
  modelType: 'roberta',
  title: 'RoBERTa',
  group: 'encoder',
  decoder: false,
  pipelines: ['feature-extraction', 'fill-mask'],
  special: 'BERT with positions from the ids (offset by padding_idx + 1), no token types',
  traits: { norm: 'layer', ffn: 'plain', positions: 'learned', qkv: 'separate' },
  keys: BERT_KEYS,
  positionOffset: paddingOffset,
};
