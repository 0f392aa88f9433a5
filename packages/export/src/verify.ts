/**
 * A smoke run of an exported ONNX file: one short forward pass on the CPU, fed as transformers.js
 * feeds it (empty cache tensors shaped from the file's own input dims), expecting finite outputs
 * of the right shape. Catches what no structural check sees: a shape constant the exporter could
 * not place makes onnxruntime fail here instead of in the user's pipeline.
 */
import { openSession, ort } from '@zerolm/runtime';

const TOKENS = [2, 5, 7, 11];

function int64(values: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(v))), [1, values.length]);
}

/**
 * Runs `file` once on a few tokens; throws an Error naming the file when onnxruntime fails or
 * the main output (`logits` or `last_hidden_state`) is not `[1, tokens, width]` and finite.
 */
export async function smokeRun(file: string, label: string, width: { logits?: number; hidden: number }): Promise<void> {
  const { session } = await openSession(file, 'cpu');
  try {
    const n = TOKENS.length;
    const feeds: Record<string, ort.Tensor> = {};
    for (const meta of session.inputMetadata) {
      const name = meta.name;
      if (name === 'input_ids') feeds[name] = int64(TOKENS);
      else if (name === 'attention_mask') feeds[name] = int64(TOKENS.map(() => 1));
      else if (name === 'token_type_ids') feeds[name] = int64(TOKENS.map(() => 0));
      else if (name === 'position_ids') feeds[name] = int64(TOKENS.map((_, i) => i));
      else if (name.startsWith('past_key_values.')) {
        const shape = (meta as unknown as { shape: (number | string)[] }).shape;
        const [heads, size] = [shape[1], shape[3]];
        if (typeof heads !== 'number' || typeof size !== 'number') throw new Error(`${label}: input ${name} does not state its head count and size`);
        const type = (meta as unknown as { type: string }).type === 'float16' ? 'float16' : 'float32';
        feeds[name] = new ort.Tensor(type, type === 'float16' ? new Uint16Array(0) : new Float32Array(0), [1, heads, 0, size]);
      } else {
        throw new Error(`${label}: cannot feed input '${name}' to check that the pruned model runs`);
      }
    }
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await session.run(feeds);
    } catch (error) {
      throw new Error(`${label}: the pruned model does not run: ${(error as Error).message.split('\n')[0]}`);
    }
    const output = (results['logits'] ?? results['last_hidden_state']) as ort.Tensor | undefined;
    if (!output) throw new Error(`${label}: the pruned model has neither logits nor last_hidden_state`);
    const expected = results['logits'] ? width.logits : width.hidden;
    const dims = output.dims;
    if (dims.length !== 3 || dims[0] !== 1 || dims[1] !== n || (expected !== undefined && dims[2] !== expected)) {
      throw new Error(`${label}: the pruned model's output is [${dims.join(', ')}], expected [1, ${n}, ${expected ?? 'width'}]`);
    }
    const data = output.type === 'float32' ? (output.data as Float32Array) : new Float32Array(0);
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) throw new Error(`${label}: the pruned model's output holds ${data[i]}`);
    }
  } finally {
    await session.release();
  }
}
