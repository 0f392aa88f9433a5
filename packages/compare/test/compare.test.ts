/**
 * compareModels on generated fixtures: a copied folder is indistinguishable from its reference,
 * a differently shaped random model drifts, latency and provider are reported, and bad folders
 * fail with errors that say what is wrong.
 */
import { DEFAULT_FIXTURES, ensureFixtures, ensureModel, fixturePath, type ModelSpec } from '@zerolm/test-fixtures';
import { loadModel, saveModel } from '@zerolm/onnx';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { compareModels, comparisonSvg, type ComparisonReport, type DecoderFidelity, type EncoderFidelity } from '../src';

let tmp: string;
let llamaCopy: string;
let llamaSmall: string;
let bertCopy: string;

/** Same family, vocabulary and position table as llama-tiny (so the same tokenizer), other seed and smaller, non-uniform layers. */
const LLAMA_SMALL: ModelSpec = {
  ...DEFAULT_FIXTURES['llama-tiny'],
  seed: 99,
  // Layer 0 keeps the config's head counts: the adapter reads a first layer that differs from
  // config.json as a contradiction unless the config records the pruned shapes.
  layerHeads: [4, 2],
  layerKvHeads: [2, 1],
  layerFfn: [16, 40],
  variants: [],
};

function copyFolder(from: string, name: string): string {
  const dir = path.join(tmp, name);
  fs.cpSync(from, dir, { recursive: true });
  return dir;
}

const FAST = { runs: 3, warmup: 1, batch: 4 } as const;

beforeAll(() => {
  ensureFixtures(['llama-tiny', 'bert-tiny', 'bert-nonuniform', 'gpt2-tiny']);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-compare-'));
  llamaCopy = copyFolder(fixturePath('llama-tiny'), 'llama-copy');
  bertCopy = copyFolder(fixturePath('bert-tiny'), 'bert-copy');
  llamaSmall = ensureModel(LLAMA_SMALL, path.join(tmp, 'llama-small'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('compareModels on decoders', () => {
  let report: ComparisonReport;
  beforeAll(async () => {
    report = await compareModels(fixturePath('llama-tiny'), [llamaCopy, llamaSmall], { ...FAST, device: 'cpu' });
  });

  it('describes the run and every folder', () => {
    expect(report).toMatchObject({ kind: 'decoder', seqLen: 64, batch: 4, runs: 3, warmup: 1, device: 'cpu', dtype: 'fp32', measure: 'msv', alpha: 0.5 });
    expect(report.text.bundled).toBe(true);
    // The bundled text gives several windows of 64 tokens: enough to average over, few enough to stay fast.
    expect(report.text.samples).toBeGreaterThan(10);
    expect(report.models.map((m) => [m.label, m.role])).toEqual([
      ['llama-tiny', 'reference'],
      ['llama-copy', 'variant'],
      ['llama-small', 'variant'],
    ]);
    for (const model of report.models) {
      expect(model.onnxFiles).toEqual([path.join(path.resolve(model.dir), 'onnx/model.onnx')]);
      expect(model.onnxBytes).toBe(fs.statSync(model.onnxFiles[0]!).size);
      expect(Number.isFinite(model.score) && model.score > 0).toBe(true);
      expect(model.params.total).toBeGreaterThan(model.params.modules);
    }
  });

  it('counts parameters from the graph: the smaller variant has fewer', () => {
    const [reference, copy, small] = report.models;
    expect(copy!.params).toEqual(reference!.params);
    expect(copy!.score).toBe(reference!.score);
    // FFN 16 and 40 instead of 64; layer 1: 2 heads (1 kv) of 8 instead of 4 (2)
    const hidden = 32;
    const attention = (heads: number, kv: number) => hidden * heads * 8 * 2 + hidden * kv * 8 * 2;
    expect(small!.params.attention).toBe(attention(4, 2) + attention(2, 1));
    expect(small!.params.ffn).toBe(3 * hidden * (16 + 40));
    expect(small!.params.modules).toBeLessThan(reference!.params.modules);
  });

  it('reports positive latency and the provider, on CPU without a fallback reason when asked for CPU', () => {
    for (const model of report.models) {
      expect(model.provider).toBe('cpu');
      expect(model.fallbackReason).toBeUndefined();
      expect(model.latency.runs).toBe(3);
      expect(model.latency.minMs).toBeGreaterThan(0);
      expect(model.latency.medianMs).toBeGreaterThanOrEqual(model.latency.minMs);
      expect(model.latency.p90Ms).toBeGreaterThanOrEqual(model.latency.medianMs);
    }
  });

  it('finds a copied folder identical to the reference', () => {
    const reference = report.models[0]!.fidelity as DecoderFidelity;
    const copy = report.models[1]!.fidelity as DecoderFidelity;
    expect(copy.top1Agreement).toBe(1);
    expect(copy.klDivergence).toBeLessThan(1e-9);
    expect(Math.abs(copy.perplexity / reference.perplexity - 1)).toBeLessThan(1e-9);
    expect(copy.positions).toBe(report.text.samples * 64);
    // A random model over a 384-word vocabulary: perplexity in the hundreds, not 1 or infinity.
    expect(reference.perplexity).toBeGreaterThan(10);
    expect(Number.isFinite(reference.perplexity)).toBe(true);
  });

  it('measures the drift of a differently shaped random model', () => {
    const reference = report.models[0]!.fidelity as DecoderFidelity;
    const small = report.models[2]!.fidelity as DecoderFidelity;
    expect(small.klDivergence).toBeGreaterThan(0.05);
    expect(small.top1Agreement).toBeLessThan(0.9);
    // Two random models both sit near the uniform distribution, so their perplexities differ only
    // a little; the drift shows in KL and top-1 above.
    expect(Math.abs(small.perplexity / reference.perplexity - 1)).toBeGreaterThan(1e-4);
  });

  it('plots parameters against KL with the reference marked', () => {
    const svg = comparisonSvg(report);
    expect(svg).toContain('mean KL(reference || model)');
    expect(svg).toContain('>llama-tiny (reference)</text>');
    expect(svg).toContain('>llama-small</text>');
    expect(svg.match(/<circle /g)).toHaveLength(2);
    expect(comparisonSvg(report, 'top1')).toContain('top-1 next-token agreement');
    expect(() => comparisonSvg(report, 'token-cosine')).toThrow(/applies to encoders; these models are decoders/);
  });

  it('reports progress up to the total', async () => {
    const calls: [number, number][] = [];
    await compareModels(fixturePath('llama-tiny'), [llamaCopy], { runs: 1, warmup: 0, batch: 16, maxSamples: 20, device: 'cpu', onProgress: (d, t) => calls.push([d, t]) });
    const total = calls[0]![1];
    expect(total).toBe(2 * (2 + 2)); // two models: load, latency, two batches of 16 windows (20 windows)
    expect(calls.map((c) => c[0])).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });

  it('says why auto fell back to CPU, or runs on CUDA', async () => {
    const result = await compareModels(fixturePath('llama-tiny'), [llamaCopy], { runs: 1, warmup: 0, maxSamples: 1, device: 'auto' });
    for (const model of result.models) {
      if (model.provider === 'cpu') expect(model.fallbackReason).toEqual(expect.any(String));
      else expect(model.provider).toBe('cuda');
    }
  });
});

describe('compareModels on a model with external data', () => {
  it('counts the data file in the size on disk and runs the model from it', async () => {
    const dir = copyFolder(fixturePath('llama-tiny'), 'llama-external');
    const file = path.join(dir, 'onnx/model.onnx');
    saveModel(loadModel(file).model, file, { externalData: { location: 'model.onnx_data' } });
    const report = await compareModels(fixturePath('llama-tiny'), [dir], { runs: 1, warmup: 0, maxSamples: 4, device: 'cpu' });
    const variant = report.models[1]!;
    expect(variant.onnxFiles).toEqual([file, path.join(dir, 'onnx/model.onnx_data')]);
    expect(variant.onnxBytes).toBe(fs.statSync(file).size + fs.statSync(path.join(dir, 'onnx/model.onnx_data')).size);
    expect(fs.statSync(file).size).toBeLessThan(report.models[0]!.onnxBytes / 2);
    expect(variant.params).toEqual(report.models[0]!.params);
    expect((variant.fidelity as DecoderFidelity).klDivergence).toBeLessThan(1e-9);
  });
});

describe('compareModels on encoders', () => {
  let report: ComparisonReport;
  beforeAll(async () => {
    report = await compareModels(fixturePath('bert-tiny'), [bertCopy, fixturePath('bert-nonuniform')], { ...FAST, device: 'cpu' });
  });

  it('finds a copied folder identical to the reference', () => {
    const copy = report.models[1]!.fidelity as EncoderFidelity;
    expect(report.kind).toBe('encoder');
    expect(Math.abs(copy.tokenCosine - 1)).toBeLessThan(1e-6);
    expect(Math.abs(copy.sentenceCosine - 1)).toBeLessThan(1e-6);
    expect(copy.sentences).toBe(report.text.samples);
    expect(copy.tokens).toBeGreaterThan(copy.sentences * 5);
  });

  it('measures the drift of another random encoder with the same tokenizer', () => {
    const other = report.models[2]!.fidelity as EncoderFidelity;
    expect(other.tokenCosine).toBeLessThan(0.9);
    expect(other.sentenceCosine).toBeLessThan(0.99);
    expect(report.models[2]!.params.modules).toBeLessThan(report.models[0]!.params.modules);
  });

  it('plots cosine for encoders', () => {
    expect(comparisonSvg(report)).toContain('cosine similarity of token embeddings');
    expect(comparisonSvg(report, 'sentence-cosine')).toContain('mean-pooled sentence embeddings');
  });

  it('pads a batch without changing any sequence: batch 1 and batch 8 agree', async () => {
    const options = { runs: 1, warmup: 0, maxSamples: 12, device: 'cpu' as const };
    const one = await compareModels(fixturePath('bert-tiny'), [fixturePath('bert-nonuniform')], { ...options, batch: 1 });
    const eight = await compareModels(fixturePath('bert-tiny'), [fixturePath('bert-nonuniform')], { ...options, batch: 8 });
    const a = one.models[1]!.fidelity as EncoderFidelity;
    const b = eight.models[1]!.fidelity as EncoderFidelity;
    expect(b.tokenCosine).toBeCloseTo(a.tokenCosine, 5);
    expect(b.sentenceCosine).toBeCloseTo(a.sentenceCosine, 5);
  });
});

describe('compareModels refuses bad input', () => {
  const options = { runs: 1, warmup: 0, maxSamples: 1, device: 'cpu' as const };

  it.each([
    ['a folder that does not exist', () => path.join(tmp, 'nope'), /nope does not exist/],
    ['a folder without config.json', () => withRemoved('no-config', 'config.json'), /no config.json in .*no-config: not a Hugging Face model folder/],
    ['a folder without the ONNX file', () => withRemoved('no-onnx', 'onnx/model.onnx'), /no onnx\/model.onnx in .*no-onnx/],
    ['a folder without a tokenizer', () => withRemoved('no-tokenizer', 'tokenizer.json'), /no tokenizer.json in .*no-tokenizer/],
    ['an ONNX file that is not a model', () => withGarbageOnnx(), /not a valid ONNX model \(.*garbage\/onnx\/model.onnx\)/],
  ])('%s', async (_, variant, pattern) => {
    await expect(compareModels(fixturePath('llama-tiny'), [variant()], options)).rejects.toThrow(pattern);
  });

  it('a folder of text files is not a model', async () => {
    const dir = path.join(tmp, 'notes');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'readme.txt'), 'hello');
    await expect(compareModels(dir, [llamaCopy], options)).rejects.toThrow(/no config.json in .*notes: not a Hugging Face model folder/);
  });

  it('mismatched tokenizers', async () => {
    const other = ensureModel({ ...LLAMA_SMALL, vocab: 400 }, path.join(tmp, 'llama-vocab400'));
    await expect(compareModels(fixturePath('llama-tiny'), [other], options)).rejects.toThrow(
      /tokenizers differ: .*llama-vocab400\/tokenizer.json is not the same as .*llama-tiny\/tokenizer.json/,
    );
    const missing = withRemoved('no-special-map', 'tokenizer_config.json');
    await expect(compareModels(fixturePath('llama-tiny'), [missing], options)).rejects.toThrow(/no tokenizer_config.json in/);
  });

  it('tokenizer files that differ only in layout are the same tokenizer', async () => {
    const dir = copyFolder(fixturePath('llama-tiny'), 'relaid');
    const file = path.join(dir, 'tokenizer.json');
    fs.writeFileSync(file, JSON.stringify(JSON.parse(fs.readFileSync(file, 'utf8')), null, 7));
    const report = await compareModels(fixturePath('llama-tiny'), [dir], options);
    expect((report.models[1]!.fidelity as DecoderFidelity).klDivergence).toBeLessThan(1e-9);
  });

  it('an encoder compared with a decoder', async () => {
    await expect(compareModels(fixturePath('llama-tiny'), [fixturePath('bert-tiny')], options)).rejects.toThrow(
      /bert-tiny is an encoder \(bert\) but the reference .*llama-tiny is a decoder \(llama\): compare models of one kind/,
    );
  });

  it('sequences longer than the position table', async () => {
    await expect(compareModels(fixturePath('bert-tiny'), [bertCopy], { ...options, seqLen: 65 })).rejects.toThrow(/--seq-len 65 exceeds the 64 positions/);
  });

  it('a text too short for one window, a missing text file, no variants, bad numbers', async () => {
    const short = path.join(tmp, 'short.txt');
    fs.writeFileSync(short, 'the baker\n');
    await expect(compareModels(fixturePath('llama-tiny'), [llamaCopy], { ...options, text: short })).rejects.toThrow(/the text holds 4 tokens: one window of --seq-len 64 needs 65/);
    await expect(compareModels(fixturePath('llama-tiny'), [llamaCopy], { ...options, text: path.join(tmp, 'none.txt') })).rejects.toThrow(/text file .*none.txt does not exist/);
    await expect(compareModels(fixturePath('llama-tiny'), [], options)).rejects.toThrow(/at least one variant/);
    await expect(compareModels(fixturePath('llama-tiny'), [llamaCopy], { ...options, batch: 0 })).rejects.toThrow(/--batch must be an integer >= 1/);
  });
});

function withRemoved(name: string, relative: string): string {
  const dir = copyFolder(fixturePath('llama-tiny'), name);
  fs.rmSync(path.join(dir, relative));
  return dir;
}

function withGarbageOnnx(): string {
  const dir = copyFolder(fixturePath('llama-tiny'), 'garbage');
  fs.writeFileSync(path.join(dir, 'onnx/model.onnx'), 'this is not protobuf, just text');
  return dir;
}
