/**
 * What the exporter of pruned models relies on in the adapters: the head size a pruned config
 * states (`zerolm.headDim`), the config keys that state a model's shape per model_type, and
 * decoder caches found through the Casts of fp16 files written with keep_io_types.
 */
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { configShapeKeys, loadHfModel, normalizeConfig } from '../src';

test('zerolm.headDim gives the head size when hidden / heads no longer does', () => {
  const raw = { model_type: 'gpt2', n_layer: 2, n_embd: 32, n_head: 3, zerolm: { headDim: 8, layers: [{ heads: 3, kvHeads: 3, ffnWidth: 10 }, { heads: 1, kvHeads: 1, ffnWidth: 4 }] } };
  const config = normalizeConfig(raw);
  expect(config.headDim).toBe(8);
  expect(config.prunedLayers).toHaveLength(2);
  expect(() => normalizeConfig({ ...raw, zerolm: { headDim: 0 } })).toThrow(/zerolm: "headDim" must be a positive integer/);
  expect(() => normalizeConfig({ model_type: 'gpt2', n_layer: 2, n_embd: 32, n_head: 3 })).toThrow(/not divisible by 3 heads/);
});

test('configShapeKeys names the keys each model_type writes', () => {
  expect(configShapeKeys('distilbert')).toEqual({ layers: ['n_layers'], heads: ['n_heads'], ffnWidth: ['hidden_dim'] });
  expect(configShapeKeys('gpt2').heads).toEqual(['n_head', 'num_attention_heads']);
  expect(configShapeKeys('qwen2')).toMatchObject({ kvHeads: ['num_key_value_heads'], headDim: 'head_dim' });
  expect(configShapeKeys('roberta').ffnWidth).toEqual(['intermediate_size']);
  expect(() => configShapeKeys('t5')).toThrow(/unsupported model family "t5"/);
});

test('an fp16 decoder with keep_io_types: past and present cache names are found through its Casts', () => {
  ensureFixtures(['llama-tiny']);
  for (const dtype of ['fp32', 'fp16'] as const) {
    const attention = loadHfModel(fixturePath('llama-tiny'), { dtype }).match.layers[1]!.attention;
    expect([attention.pastKey, attention.pastValue, attention.presentKey, attention.presentValue]).toEqual([
      'past_key_values.1.key',
      'past_key_values.1.value',
      'present.1.key',
      'present.1.value',
    ]);
  }
});
