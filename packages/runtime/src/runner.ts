/**
 * One onnxruntime session per model folder, fed the way transformers.js feeds an exported model
 * for a full forward pass: `input_ids`, `attention_mask`, `token_type_ids` (zeros) when the graph
 * takes it, `position_ids` (0..seqLen-1) for decoders, and an empty key-value cache (past length
 * 0) for every `past_key_values.*` input. Only the output compare reads is fetched:
 * `last_hidden_state` for encoders (`logits` for a fill-mask export that has no hidden-state
 * output), `logits` for decoders.
 */
import type { HfModel } from '@zerolm/adapters';
import { cacheInputs, floatData, fullPassFeeds, KNOWN_INPUTS, type CacheInput, type TokenBatch } from './feeds';
import { openSession, type Device, type OpenedSession, type Provider, type ort } from './session';

/** One model output, decoded to float32. */
export interface ModelOutput {
  readonly data: Float32Array;
  readonly dims: readonly number[];
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
    const outputName = decoder || !session.outputNames.includes('last_hidden_state') ? 'logits' : 'last_hidden_state';
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
    const data = floatData(output);
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
