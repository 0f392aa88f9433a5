import { loadHfModel } from '@zerolm/adapters';
import { Rng } from '@zerolm/core';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import {
  argmax,
  cacheInputs,
  CachedDecoder,
  checkTokenizerFiles,
  fullContextGreedy,
  fullPassFeeds,
  loadTokenizer,
  ModelRunner,
  openSession,
  positionLimit,
  sampleFromLogits,
  trainedPositionLimit,
} from '../src';

beforeAll(() => ensureFixtures(['llama-tiny', 'gpt2-tiny', 'bert-tiny', 'roberta-tiny']));

describe('sessions', () => {
  test('an unknown device is refused by name', async () => {
    await expect(openSession(join(fixturePath('llama-tiny'), 'onnx/model.onnx'), 'tpu' as never)).rejects.toThrow(/unknown device "tpu" \(known: auto, cpu, cuda\)/);
  });

  test('cpu runs on the CPU provider without a fallback reason; auto says why it is not on CUDA', async () => {
    const file = join(fixturePath('llama-tiny'), 'onnx/model.onnx');
    const cpu = await openSession(file, 'cpu');
    expect(cpu.provider).toBe('cpu');
    expect(cpu.fallbackReason).toBeUndefined();
    await cpu.session.release();
    const auto = await openSession(file, 'auto');
    if (auto.provider === 'cpu') expect(auto.fallbackReason).toMatch(/\S/);
    await auto.session.release();
  });
});

describe('feeds', () => {
  test('a decoder gets position ids and an empty cache shaped [batch, kv heads, 0, head size]', async () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    const { session } = await openSession(model.file, 'cpu');
    try {
      const cache = cacheInputs(session, model);
      expect(cache).toHaveLength(2 * model.graph.layers.length);
      for (const c of cache) expect([c.heads, c.headDim]).toEqual([model.graph.layers[0]!.attention.kvHeads, model.graph.layers[0]!.attention.headDim]);
      const ids = BigInt64Array.from([5n, 6n, 7n, 8n, 9n, 10n]);
      const feeds = fullPassFeeds(session, cache, { batch: 2, seqLen: 3, ids, mask: new BigInt64Array(6).fill(1n) });
      expect(Array.from(feeds['position_ids']!.data as BigInt64Array)).toEqual([0n, 1n, 2n, 0n, 1n, 2n]);
      expect(feeds[cache[0]!.name]!.dims).toEqual([2, cache[0]!.heads, 0, cache[0]!.headDim]);
      expect(feeds['token_type_ids']).toBeUndefined();
    } finally {
      await session.release();
    }
  });

  test('an encoder gets zero token type ids and no position ids', async () => {
    const model = loadHfModel(fixturePath('bert-tiny'));
    const { session } = await openSession(model.file, 'cpu');
    try {
      const feeds = fullPassFeeds(session, [], { batch: 1, seqLen: 2, ids: BigInt64Array.from([2n, 3n]), mask: BigInt64Array.from([1n, 1n]) });
      expect(Array.from(feeds['token_type_ids']!.data as BigInt64Array)).toEqual([0n, 0n]);
      expect(feeds['position_ids']).toBeUndefined();
    } finally {
      await session.release();
    }
  });

  test('position limits: a learned table bounds the sequence (RoBERTa offset by its padding id), rotary models only by training', () => {
    const roberta = loadHfModel(fixturePath('roberta-tiny')).config;
    const pad = roberta.raw['pad_token_id'] as number;
    expect(positionLimit(roberta)).toBe((roberta.raw['max_position_embeddings'] as number) - pad - 1);
    const llama = loadHfModel(fixturePath('llama-tiny')).config;
    expect(positionLimit(llama)).toBeUndefined();
    expect(trainedPositionLimit(llama)).toBe(llama.raw['max_position_embeddings']);
  });
});

describe('decoding', () => {
  test.each(['llama-tiny', 'gpt2-tiny'])('%s: stepping with the key-value cache gives the tokens of a full-context greedy loop', async (name) => {
    const model = loadHfModel(fixturePath(name));
    const prompt = [1, 17, 42, 99];
    const steps = 8;
    const reference = await fullContextGreedy(model.file, prompt, steps, -1);
    const decoder = await CachedDecoder.open(model, 'cpu');
    try {
      decoder.reset(1);
      const generated: number[] = [];
      let next = 0;
      for (let t = 0; t < prompt.length + steps - 1; t++) {
        const token = t < prompt.length ? prompt[t]! : next;
        const { logits, vocabulary } = await decoder.step(BigInt64Array.from([BigInt(token)]));
        next = argmax(logits, 0, vocabulary);
        if (t >= prompt.length - 1) generated.push(next);
      }
      expect(generated).toEqual(reference);
    } finally {
      await decoder.release();
    }
  });

  test('a step with the wrong batch is refused', async () => {
    const decoder = await CachedDecoder.open(loadHfModel(fixturePath('llama-tiny')), 'cpu');
    try {
      decoder.reset(2);
      await expect(decoder.step(BigInt64Array.from([1n]))).rejects.toThrow(/1 tokens for a batch of 2/);
    } finally {
      await decoder.release();
    }
  });

  test('an encoder cannot be opened as a cached decoder', async () => {
    await expect(CachedDecoder.open(loadHfModel(fixturePath('bert-tiny')), 'cpu')).rejects.toThrow(/no "logits" output|token_type_ids/);
  });

  test('sampling follows the softmax: a dominant logit is drawn, a -Infinity one never', () => {
    const rng = new Rng('sample-test');
    const logits = Float32Array.from([0, 0, -Infinity, 0]);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[sampleFromLogits(logits, 0, 4, rng)]!++;
    expect(counts[2]).toBe(0);
    for (const i of [0, 1, 3]) expect(counts[i]! / 3000).toBeCloseTo(1 / 3, 1);
    expect(sampleFromLogits(Float32Array.from([9, 0, 50, 0]), 1, 3, rng)).toBe(1);
  });
});

describe('runner and tokenizer', () => {
  test('the runner returns float32 outputs of [batch, seqLen, width]', async () => {
    const model = loadHfModel(fixturePath('gpt2-tiny'));
    const runner = await ModelRunner.open(model, 'cpu');
    try {
      const out = await runner.run({ batch: 2, seqLen: 4, ids: new BigInt64Array(8).fill(5n), mask: new BigInt64Array(8).fill(1n) });
      expect(out.dims.slice(0, 2)).toEqual([2, 4]);
      expect(out.data).toBeInstanceOf(Float32Array);
    } finally {
      await runner.release();
    }
  });

  test('the tokenizer loads from the folder; a folder without one is refused by name', async () => {
    const tokenizer = await loadTokenizer(fixturePath('llama-tiny'));
    expect(tokenizer.encode('the').length).toBeGreaterThan(0);
    // The fixtures' BertTokenizer: [CLS] words [SEP], or the words alone; [MASK] is id 4.
    const words = tokenizer.encode('the river', false);
    expect(words).toHaveLength(2);
    expect(tokenizer.encode('the river')).toEqual([2, ...words, 3]);
    expect(tokenizer.maskTokenId).toBe(4);
    expect([...tokenizer.specialTokenIds].sort()).toEqual([0, 1, 2, 3, 4]);
    const empty = mkdtempSync(join(tmpdir(), 'zerolm-runtime-'));
    try {
      writeFileSync(join(empty, 'tokenizer_config.json'), '{}');
      expect(() => checkTokenizerFiles(empty)).toThrow(/no tokenizer\.json in/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
