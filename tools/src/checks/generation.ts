/**
 * Checks that run a model folder's ONNX file directly through onnxruntime-node, the reference
 * that transformers.js runs are compared with in tests (generated fixtures, pruned exports).
 */
import * as ort from 'onnxruntime-node';

/** An int64 tensor from plain numbers. */
export function int64Tensor(values: readonly number[], dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(v))), dims);
}

/**
 * Greedy decoding without the cache: the whole sequence every step, each `past_key_values.*`
 * input fed empty (`[1, kv_heads, 0, head_dim]` from the input's own dims). Returns the new
 * tokens (stopping after `eos`).
 */
export async function fullContextGreedy(modelFile: string, prompt: readonly number[], maxNew: number, eos: number): Promise<number[]> {
  const session = await ort.InferenceSession.create(modelFile);
  const tokens = [...prompt];
  try {
    for (let step = 0; step < maxNew; step++) {
      const n = tokens.length;
      const feeds: Record<string, ort.Tensor> = {
        input_ids: int64Tensor(tokens, [1, n]),
        attention_mask: int64Tensor(tokens.map(() => 1), [1, n]),
      };
      if (session.inputNames.includes('position_ids')) feeds['position_ids'] = int64Tensor(tokens.map((_, i) => i), [1, n]);
      for (const meta of session.inputMetadata) {
        if (!meta.name.startsWith('past_key_values.')) continue;
        const shape = (meta as unknown as { shape: (number | string)[] }).shape;
        feeds[meta.name] = new ort.Tensor('float32', new Float32Array(0), [1, shape[1] as number, 0, shape[3] as number]);
      }
      const logits = (await session.run(feeds))['logits'] as ort.Tensor;
      const vocab = logits.dims[2] as number;
      const last = (logits.data as Float32Array).subarray((n - 1) * vocab, n * vocab);
      let best = 0;
      for (let v = 1; v < vocab; v++) if ((last[v] as number) > (last[best] as number)) best = v;
      tokens.push(best);
      if (best === eos) break;
    }
  } finally {
    await session.release();
  }
  return tokens.slice(prompt.length);
}
