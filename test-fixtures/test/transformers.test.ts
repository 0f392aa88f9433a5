/**
 * The generated fixtures are real transformers.js models: every named fixture loads through
 * `pipeline()` from its local folder and gives finite outputs of the right shape, and decoders'
 * cached greedy `generate` agrees with a full-context greedy loop run through onnxruntime-node
 * directly (empty past, the whole sequence every step). Every extra weight file of a fixture
 * loads with its own `dtype`: encoders stay within the format's rounding of fp32, decoders'
 * cached generation equals the full-context loop on that same file.
 */
import { dirname } from 'node:path';
import * as ort from 'onnxruntime-node';
import { fullContextGreedy, int64Tensor as int64 } from '@zerolm/runtime';
import { DEFAULT_FIXTURES, ensureFixtures, fixturePath, isEncoder, resolveSpec, VARIANT_FILES, type FixtureName } from '../src';

// transformers.js ships a CommonJS build for Node; the Jest environment passes the host's typed
// array constructors through so onnxruntime-node accepts tensors made here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformers = require('@huggingface/transformers');
const { pipeline, env } = transformers;

const names = Object.keys(DEFAULT_FIXTURES) as FixtureName[];
const taskOf = (n: FixtureName) => resolveSpec(DEFAULT_FIXTURES[n]).task;
const encoders = names.filter((n) => isEncoder(DEFAULT_FIXTURES[n].family) && taskOf(n) === 'feature-extraction');
const fillMask = names.filter((n) => taskOf(n) === 'fill-mask');
const decoders = names.filter((n) => !isEncoder(DEFAULT_FIXTURES[n].family));
const EOS = 3;
const PROMPT = 'the keeper of the library';
const NEW_TOKENS = 8;

beforeAll(() => {
  ensureFixtures(names);
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = `${dirname(fixturePath('bert-tiny'))}/`;
});

function allFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i] as number)) return false;
  return true;
}

describe.each(encoders)('%s (feature-extraction)', (name) => {
  const spec = resolveSpec(DEFAULT_FIXTURES[name]);

  test('fp32 loads and matches a direct onnxruntime run', async () => {
    const extractor = await pipeline('feature-extraction', name, { dtype: 'fp32' });
    const text = 'the stranger found the farm on the north hill';
    const output = await extractor(text);
    const ids: number[] = Array.from(extractor.tokenizer(text).input_ids.data as BigInt64Array, Number);
    expect(output.dims).toEqual([1, ids.length, spec.hidden]);
    expect(allFinite(output.data)).toBe(true);
    expect(ids).not.toContain(1); // every word is in the vocabulary: no [UNK]

    const session = await ort.InferenceSession.create(`${fixturePath(name)}/onnx/model.onnx`);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(ids, [1, ids.length]),
      attention_mask: int64(ids.map(() => 1), [1, ids.length]),
    };
    if (session.inputNames.includes('token_type_ids')) feeds.token_type_ids = int64(ids.map(() => 0), [1, ids.length]);
    const direct = (await session.run(feeds)).last_hidden_state as ort.Tensor;
    const expected = direct.data as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs((output.data[i] as number) - (expected[i] as number)));
    expect(maxDiff).toBeLessThan(1e-5);
    await extractor.dispose();
  });
});

describe.each(fillMask)('%s (fill-mask)', (name) => {
  test('fp32 loads, and its scores are the softmax of a direct onnxruntime run at the mask', async () => {
    const fill = await pipeline('fill-mask', name, { dtype: 'fp32' });
    const text = 'the stranger found the [MASK] on the north hill';
    const predictions: { token: number; score: number }[] = await fill(text, { top_k: 5 });
    const ids: number[] = Array.from(fill.tokenizer(text).input_ids.data as BigInt64Array, Number);
    const session = await ort.InferenceSession.create(`${fixturePath(name)}/onnx/model.onnx`);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(ids, [1, ids.length]),
      attention_mask: int64(ids.map(() => 1), [1, ids.length]),
    };
    if (session.inputNames.includes('token_type_ids')) feeds.token_type_ids = int64(ids.map(() => 0), [1, ids.length]);
    const logits = (await session.run(feeds)).logits as ort.Tensor;
    const vocab = logits.dims[2] as number;
    const at = ids.indexOf(fill.tokenizer.mask_token_id);
    const row = Array.from((logits.data as Float32Array).subarray(at * vocab, (at + 1) * vocab));
    const max = Math.max(...row);
    const sum = row.reduce((a, v) => a + Math.exp(v - max), 0);
    expect(predictions).toHaveLength(5);
    for (const p of predictions) expect(Math.abs(p.score - Math.exp(row[p.token]! - max) / sum)).toBeLessThan(1e-5);
    expect(predictions[0]!.token).toBe(row.indexOf(max));
    await fill.dispose();
    await session.release();
  });
});

/** Relative error of the hidden states each format may add: its own rounding, not a different model. */
const ENCODER_TOLERANCE: Record<string, number> = { fp16: 0.01, q8: 0.2, int8: 0.2, uint8: 0.2, q4: 0.5, q4f16: 0.5, bnb4: 0.5 };

const encoderVariants = encoders.flatMap((name) => ((DEFAULT_FIXTURES[name] as { variants?: readonly string[] }).variants ?? []).map((dtype) => [name, dtype] as const));
test.each(encoderVariants)('%s %s loads in transformers.js with that dtype and stays close to fp32', async (name, dtype) => {
  const text = 'a curious mind is like a lantern';
  const fp32 = await pipeline('feature-extraction', name, { dtype: 'fp32' });
  const variant = await pipeline('feature-extraction', name, { dtype });
  const reference = await fp32(text);
  const output = await variant(text);
  expect(output.dims).toEqual(reference.dims);
  expect(allFinite(output.data)).toBe(true);
  let num = 0;
  let den = 0;
  for (let i = 0; i < reference.data.length; i++) {
    num += ((output.data[i] as number) - (reference.data[i] as number)) ** 2;
    den += (reference.data[i] as number) ** 2;
  }
  expect(Math.sqrt(num / den)).toBeLessThan(ENCODER_TOLERANCE[dtype]!);
  await fp32.dispose();
  await variant.dispose();
});

/** Formats that quantize activations per run (onnxruntime's dynamic quantization). */
const DYNAMIC_ACTIVATIONS = new Set(['q8', 'int8', 'uint8']);
/**
 * How far below the full-context maximum a cached choice's logit may be in those formats, as a
 * share of the step's logit range (a random token falls short by a third of it or more).
 */
const ACTIVATION_ROUNDING = 0.05;

/**
 * One full-context run over the prompt and the generated tokens (causal: position t sees tokens
 * up to t, as the greedy loop's step t did): the largest amount by which a generated token's
 * logit falls short of the maximum logit at its step, relative to that step's logit range.
 */
async function shortfallOfChoices(file: string, prompt: readonly number[], generated: readonly number[]): Promise<number> {
  const tokens = [...prompt, ...generated];
  const session = await ort.InferenceSession.create(file);
  try {
    const n = tokens.length;
    const feeds: Record<string, ort.Tensor> = { input_ids: int64(tokens, [1, n]), attention_mask: int64(tokens.map(() => 1), [1, n]) };
    if (session.inputNames.includes('position_ids')) feeds.position_ids = int64(tokens.map((_, i) => i), [1, n]);
    for (const meta of session.inputMetadata) {
      if (!meta.name.startsWith('past_key_values.')) continue;
      const shape = (meta as unknown as { shape: number[] }).shape;
      feeds[meta.name] = new ort.Tensor('float32', new Float32Array(0), [1, shape[1]!, 0, shape[3]!]);
    }
    const logits = (await session.run(feeds)).logits as ort.Tensor;
    const vocab = logits.dims[2] as number;
    const data = logits.data as Float32Array;
    let worst = 0;
    generated.forEach((token, step) => {
      const offset = (prompt.length + step - 1) * vocab;
      let max = -Infinity;
      for (let v = 0; v < vocab; v++) max = Math.max(max, data[offset + v]!);
      let min = Infinity;
      for (let v = 0; v < vocab; v++) min = Math.min(min, data[offset + v]!);
      worst = Math.max(worst, (max - data[offset + token]!) / (max - min));
    });
    return worst;
  } finally {
    await session.release();
  }
}

describe.each(decoders)('%s (text-generation)', (name) => {
  const spec = resolveSpec(DEFAULT_FIXTURES[name]);

  test('fp32 cached greedy generate matches the full-context greedy loop', async () => {
    const generator = await pipeline('text-generation', name, { dtype: 'fp32' });
    const prompt: number[] = Array.from(
      generator.tokenizer(PROMPT, { add_special_tokens: false }).input_ids.data as BigInt64Array,
      Number,
    );
    const inputs = generator.tokenizer(PROMPT, { add_special_tokens: false, return_tensor: true });
    const generated = await generator.model.generate({ ...inputs, max_new_tokens: NEW_TOKENS, do_sample: false });
    const cached = Array.from(generated.data as BigInt64Array, Number).slice(prompt.length);
    const reference = await fullContextGreedy(`${fixturePath(name)}/onnx/model.onnx`, prompt, NEW_TOKENS, EOS);
    expect(cached).toEqual(reference);
    // A real test of the cache needs several steps (the random model must not stop at once).
    expect(cached.length).toBeGreaterThanOrEqual(4);
    expect(cached.every((t) => t >= 0 && t < spec.vocab)).toBe(true);

    const [{ generated_text }] = await generator(PROMPT, { max_new_tokens: 4, do_sample: false });
    expect(generated_text.startsWith(PROMPT)).toBe(true);
    await generator.dispose();
  });

  const variants = (DEFAULT_FIXTURES[name] as { variants?: readonly string[] }).variants ?? [];
  if (variants.length === 0) return;
  test.each(variants)('%s loads with that dtype; cached greedy generate matches the full-context loop on the same file', async (dtype) => {
    const generator = await pipeline('text-generation', name, { dtype });
    const inputs = generator.tokenizer(PROMPT, { add_special_tokens: false, return_tensor: true });
    const prompt: number[] = Array.from(inputs.input_ids.data as BigInt64Array, Number);
    const output = await generator.model(inputs);
    expect(output.logits.dims).toEqual([1, prompt.length, spec.vocab]);
    expect(allFinite(output.logits.data)).toBe(true);
    const generated = await generator.model.generate({ ...inputs, max_new_tokens: NEW_TOKENS, do_sample: false });
    const cached = Array.from(generated.data as BigInt64Array, Number).slice(prompt.length);
    const file = `${fixturePath(name)}/${VARIANT_FILES[dtype as keyof typeof VARIANT_FILES]}`;
    if (DYNAMIC_ACTIVATIONS.has(dtype)) {
      // DynamicQuantizeLinear scales the activations by their range in each run: one new token
      // with the cache, the whole sequence without it. So each cached choice must be the
      // full-context argmax up to that rounding, not bit for bit.
      expect(await shortfallOfChoices(file, prompt, cached)).toBeLessThan(ACTIVATION_ROUNDING);
    } else {
      expect(cached).toEqual(await fullContextGreedy(file, prompt, NEW_TOKENS, EOS));
    }
    expect(cached.length).toBeGreaterThanOrEqual(4);
    await generator.dispose();
  });
});
