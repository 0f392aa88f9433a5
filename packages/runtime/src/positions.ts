import { findFamily, type NormalizedConfig } from '@zerolm/adapters';

/**
 * How many positions a model with a learned position table can read (undefined for rotary
 * positions, which have no table). RoBERTa numbers positions from `pad_token_id + 1` (its family's
 * `positionOffset`).
 */
export function positionLimit(config: NormalizedConfig): number | undefined {
  if (config.family === 'llama') return undefined;
  const table = config.raw['n_positions'] ?? config.raw['max_position_embeddings'];
  if (typeof table !== 'number') return undefined;
  const offset = findFamily(config.modelType)?.positionOffset;
  return offset ? table - offset(config.raw) : table;
}

/** The longest sequence the model reads without leaving the positions it was trained on. */
export function trainedPositionLimit(config: NormalizedConfig): number | undefined {
  const learned = positionLimit(config);
  if (learned !== undefined) return learned;
  const trained = config.raw['max_position_embeddings'];
  return typeof trained === 'number' && trained > 0 ? trained : undefined;
}
