/**
 * One onnxruntime session per model folder, fed the way transformers.js feeds an exported model
 * for a full forward pass: `input_ids`, `attention_mask`, `token_type_ids` (zeros) when the graph
 * takes it, `position_ids` (0..seqLen-1) for decoders, and an empty key-value cache (past length
 * 0) for every `past_key_values.*` input. Only the output compare reads is fetched:
 * `last_hidden_state` for encoders, `logits` for decoders.
 */
import type { HfModel } from '@zerolm/adapters';
import { float16ToFloat32Array } from '@zerolm/onnx';
import { openSession, ort, type Device, type OpenedSession, type Provider } from '../runtime/session';

/** A batch of equally long sequences, row-major [batch, seqLen]. */
export interface TokenBatch {
  readonly batch: number;
  readonly seqLen: number;
  readonly ids: BigInt64Array;
  /** 1 for tokens, 0 for padding. */
  readonly mask: BigInt64Array;
}

/** One model output, decoded to float32. */
export interface ModelOutput {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Key-value cache input: its element type and the [kvHeads, headDim] of its layer. */
export interface CacheInput {
  readonly name: string;
  readonly type: 'float32' | 'float16';
  readonly heads: number;
  readonly headDim: number;
}

const KNOWN_INPUTS = new Set(['input_ids', 'attention_mask', 'token_type_ids', 'position_ids']);

function tensorMetadata(session: ort.InferenceSession, name: string): ort.InferenceSession.TensorValueMetadata | undefined {
  const meta = session.inputMetadata.find((m) => m.name === name);
  return meta && meta.isTensor ? meta : undefined;
}

/** Cache dims from the graph's input shape where it states them, else from the module graph. */
export function cacheInputs(session: ort.InferenceSession, model: HfModel): CacheInput[] {
  const fromGraph = new Map<string, { heads: number; headDim: number }>();
  model.match.layers.forEach((layer, i) => {
    const attention = model.graph.layers[i]!.attention;
    for (const name of [layer.attention.pastKey, layer.attention.pastValue]) {
      if (name) fromGraph.set(name, { heads: attention.kvHeads, headDim: attention.headDim });
    }
  });
  return session.inputNames
    .filter((name) => name.startsWith('past_key_values.'))
    .map((name) => {
      const meta = tensorMetadata(session, name);
      const shape = meta?.shape ?? [];
      const known = fromGraph.get(name);
      const heads = typeof shape[1] === 'number' ? shape[1] : known?.heads;
      const headDim = typeof shape[3] === 'number' ? shape[3] : known?.headDim;
      if (heads === undefined || headDim === undefined) {
        throw new Error(`${model.file}: cannot tell the key-value heads and head size of cache input ${name}`);
      }
      const type = meta?.type ?? 'float32';
      if (type !== 'float32' && type !== 'float16') throw new Error(`${model.file}: cache input ${name} has element type ${type}, not float32 or float16`);
      return { name, type, heads, headDim };
    });
}

/**
 * The feeds of a full forward pass over `input`, as transformers.js gives them: `input_ids`,
 * `attention_mask`, `token_type_ids` (zeros) and `position_ids` (0..seqLen-1) where the graph
 * takes them, and an empty key-value cache (past length 0) for every `cache` input.
 */
export function fullPassFeeds(session: ort.InferenceSession, cache: readonly CacheInput[], input: TokenBatch): Record<string, ort.Tensor> {
  const { batch, seqLen } = input;
  const dims = [batch, seqLen];
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', input.ids, dims),
    attention_mask: new ort.Tensor('int64', input.mask, dims),
  };
  const inputs = session.inputNames;
  if (inputs.includes('token_type_ids')) feeds['token_type_ids'] = new ort.Tensor('int64', new BigInt64Array(batch * seqLen), dims);
  if (inputs.includes('position_ids')) {
    const positions = new BigInt64Array(batch * seqLen);
    for (let b = 0; b < batch; b++) for (let t = 0; t < seqLen; t++) positions[b * seqLen + t] = BigInt(t);
    feeds['position_ids'] = new ort.Tensor('int64', positions, dims);
  }
  for (const c of cache) {
    const empty = c.type === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    feeds[c.name] = new ort.Tensor(c.type, empty, [batch, c.heads, 0, c.headDim]);
  }
  return feeds;
}

export class ModelRunner {
  private constructor(
    readonly file: string,
    readonly session: ort.InferenceSession,
    readonly provider: Provider,
    readonly fallbackReason: string | undefined,
    readonly decoder: boolean,
    readonly outputName: string,
    private readonly cache: readonly CacheInput[],
  ) {}

  /** Opens the model's ONNX file (`openSession`: CUDA first with `auto`, CPU otherwise). */
  static async open(model: HfModel, device: Device): Promise<ModelRunner> {
    const decoder = model.config.decoder;
    let opened: OpenedSession;
    try {
      opened = await openSession(model.file, device);
    } catch (error) {
      throw new Error(`onnxruntime cannot load ${model.file}: ${(error as Error).message.split('\n')[0]}`);
    }
    const { session } = opened;
    const outputName = decoder ? 'logits' : 'last_hidden_state';
    if (!session.outputNames.includes(outputName)) {
      throw new Error(`${model.file} has no output "${outputName}" (outputs: ${session.outputNames.join(', ')})`);
    }
    for (const name of ['input_ids', 'attention_mask']) {
      if (!session.inputNames.includes(name)) throw new Error(`${model.file} takes no "${name}" input`);
    }
    const unknown = session.inputNames.filter((n) => !KNOWN_INPUTS.has(n) && !n.startsWith('past_key_values.'));
    if (unknown.length > 0) throw new Error(`${model.file} takes inputs compare cannot feed: ${unknown.join(', ')}`);
    return new ModelRunner(model.file, session, opened.provider, opened.fallbackReason, decoder, outputName, cacheInputs(session, model));
  }

  /** One forward pass over a batch; returns the output compare reads, in float32. */
  async run(input: TokenBatch): Promise<ModelOutput> {
    const { batch, seqLen } = input;
    const feeds = fullPassFeeds(this.session, this.cache, input);
    let output: ort.Tensor | undefined;
    try {
      output = (await this.session.run(feeds, [this.outputName]))[this.outputName];
    } catch (error) {
      throw new Error(`onnxruntime failed to run ${this.file}: ${(error as Error).message.split('\n')[0]}`);
    }
    if (!output) throw new Error(`${this.file} returned no "${this.outputName}"`);
    const data =
      output.type === 'float32'
        ? (output.data as Float32Array)
        : output.type === 'float16'
          ? float16ToFloat32Array(output.data as Uint16Array)
          : undefined;
    if (!data) throw new Error(`${this.file}: output "${this.outputName}" has element type ${output.type}, not float32 or float16`);
    const outputDims = output.dims.map(Number);
    if (outputDims.length !== 3 || outputDims[0] !== batch || outputDims[1] !== seqLen) {
      throw new Error(`${this.file}: output "${this.outputName}" has shape [${outputDims.join(', ')}], expected [${batch}, ${seqLen}, *]`);
    }
    return { data, dims: outputDims };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
