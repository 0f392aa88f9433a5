/**
 * Calibration without data: sequences the model generates itself (decoders) or uniform tokens
 * (encoders), and the moments of the inputs of `down` and `o` over them.
 */
import { loadHfModel } from '@zerolm/adapters';
import { DataType, makeValueInfo } from '@zerolm/onnx';
import { DEFAULT_FIXTURES, ensureFixtures, fixturePath, generateModel, twinFixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as path from 'path';
import {
  calibrate,
  calibrationSequences,
  clearCalibrationCache,
  collectMoments,
  OrtAlgebra,
  specialTokenIds,
  type Calibration,
} from '../src';
import { cacheInputs, fullPassFeeds } from '@zerolm/runtime';
import { editableCopy, openEdited } from '../src/calibration/graph-copy';
import { embeddingPiece, layerPiece } from '../src/calibration/layer-graphs';
import { tempRoot } from '../../export/test/export-helpers';

const root = tempRoot('calibration');
beforeAll(() => ensureFixtures(['llama-tiny', 'gpt2-tiny', 'bert-tiny']));
afterAll(() => root.remove());
afterEach(() => clearCalibrationCache());

/** A copy of a fixture folder (so a test can edit it or watch what is read). */
function copyFixture(name: string, as = name): string {
  const dir = path.join(root.dir, `${as}-${Math.random().toString(36).slice(2, 8)}`);
  fs.cpSync(fixturePath(name), dir, { recursive: true });
  return dir;
}

describe('calibration sequences', () => {
  it('a decoder samples from itself: every sequence starts at BOS, EOS is followed by BOS, ids are in the vocabulary', async () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    const seqs = await calibrationSequences(model, { samples: 24, length: 40, seed: 3 });
    expect(seqs.source).toBe('self-generated');
    expect(seqs.bos).toBe(2);
    expect(seqs.eos).toBe(3);
    const vocab = model.config.raw['vocab_size'] as number;
    expect(seqs.vocabulary).toBe(vocab);
    let eosSeen = 0;
    for (let s = 0; s < 24; s++) {
      expect(seqs.tokens[s * 40]).toBe(2);
      for (let t = 0; t < 40; t++) {
        const id = seqs.tokens[s * 40 + t]!;
        expect(id >= 0 && id < vocab).toBe(true);
        if (id === 3 && t + 1 < 40) {
          eosSeen++;
          expect(seqs.tokens[s * 40 + t + 1]).toBe(2);
        }
      }
    }
    // A random 384-token model emits EOS now and then; the rule above must have been exercised.
    expect(eosSeen).toBeGreaterThan(0);
    // Samples differ from one another (they are drawn, not a fixed pattern).
    expect(new Set(Array.from({ length: 24 }, (_, s) => seqs.tokens.slice(s * 40, (s + 1) * 40).join(','))).size).toBe(24);
  });

  it('is deterministic for a seed and changes with it, whatever the batching', async () => {
    const model = loadHfModel(fixturePath('gpt2-tiny'));
    const a = await calibrationSequences(model, { samples: 6, length: 16, seed: 5 });
    const b = await calibrationSequences(model, { samples: 6, length: 16, seed: 5 });
    const c = await calibrationSequences(model, { samples: 6, length: 16, seed: 6 });
    // Sequence s depends only on (seed, s): the first 3 of 6 equal a run of 3.
    const d = await calibrationSequences(model, { samples: 3, length: 16, seed: 5 });
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    expect(Array.from(a.tokens)).not.toEqual(Array.from(c.tokens));
    expect(Array.from(d.tokens)).toEqual(Array.from(a.tokens.slice(0, 48)));
  });

  it('an encoder without a masked-LM head falls back to uniform tokens outside the special ones, and says so', async () => {
    const model = loadHfModel(fixturePath('bert-tiny'));
    const special = specialTokenIds(model);
    expect([...special].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4]);
    const seqs = await calibrationSequences(model, { samples: 8, length: 32, seed: 1 });
    expect(seqs.source).toBe('uniform');
    expect(seqs.fallback).toMatch(/has no masked-LM head \(outputs: last_hidden_state\), so it cannot sample its own sequences: tokens drawn uniformly/);
    for (const id of seqs.tokens) {
      expect(special.has(id)).toBe(false);
      expect(id).toBeLessThan(384);
    }
    expect(new Set(seqs.tokens).size).toBeGreaterThan(100);
  });

  it('caps the length at the position limit, and needs a BOS token to generate', async () => {
    const gpt2 = loadHfModel(fixturePath('gpt2-tiny'));
    const calibration = await calibrate(gpt2, { samples: 2, length: 500, seed: 0 });
    expect(calibration.summary).toMatchObject({ length: 64, requestedLength: 500, positionLimit: 64 });
    expect(calibration.sequences.tokens).toHaveLength(2 * 64);

    const dir = copyFixture('llama-tiny', 'no-bos');
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    delete config.bos_token_id;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    await expect(calibrate(loadHfModel(dir), { samples: 2, length: 8 })).rejects.toThrow(/no "bos_token_id": self-generated calibration starts every sequence at the BOS token/);
  });
});

describe('calibration statistics', () => {
  it('match E[h h^T] and E[h] computed directly from the hidden tensors, in float64', async () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    const calibration = await calibrate(model, { samples: 5, length: 12, seed: 2 });
    expect(calibration.summary).toMatchObject({ samples: 5, length: 12, seed: 2, source: 'self-generated', statisticsPasses: 1 });
    // The raw tensors, fetched from a copy of the graph, and their moments summed here.
    const edit = editableCopy(model);
    const tensors = model.match.layers.flatMap((l) => [l.ffn.down.node.input[0]!, l.attention.o.node.input[0]!]);
    for (const t of tensors) edit.graph.output.push(makeValueInfo(t, DataType.FLOAT));
    const opened = await openEdited(edit, 'cpu');
    const { tokens } = calibration.sequences;
    const feeds = fullPassFeeds(opened.session, cacheInputs(opened.session, model), {
      batch: 5,
      seqLen: 12,
      ids: BigInt64Array.from(tokens, BigInt),
      mask: new BigInt64Array(60).fill(1n),
    });
    const outputs = await opened.session.run(feeds, tensors);
    await opened.release();
    model.graph.layers.forEach((layer, i) => {
      const check = (name: string, moments: Calibration['layers'][number]['ffn']) => {
        const data = outputs[name]!.data as Float32Array;
        const n = moments.dim;
        expect(data.length).toBe(60 * n);
        expect(moments.count).toBe(60);
        let worst = 0;
        let scale = 0;
        for (let r = 0; r < n; r++) {
          for (let c = 0; c < n; c++) {
            let sum = 0;
            for (let k = 0; k < 60; k++) sum += data[k * n + r]! * data[k * n + c]!;
            worst = Math.max(worst, Math.abs(sum / 60 - moments.second[r * n + c]!));
            scale = Math.max(scale, Math.abs(sum / 60));
          }
          let mean = 0;
          for (let k = 0; k < 60; k++) mean += data[k * n + r]!;
          expect(moments.mean[r]).toBeCloseTo(mean / 60, 6);
        }
        expect(worst / scale).toBeLessThan(1e-5);
      };
      check(model.match.layers[i]!.ffn.down.node.input[0]!, calibration.layers[i]!.ffn);
      check(model.match.layers[i]!.attention.o.node.input[0]!, calibration.layers[i]!.attention);
      expect(calibration.layers[i]!.ffn.dim).toBe(layer.ffn.width);
    });
  });

  it('keeps the moments in a temporary folder under a memory cap, the same to the bit, read one layer at a time', async () => {
    for (const name of ['bert-tiny', 'llama-tiny', 'gpt2-tiny', 'electra-tiny'] as const) {
      const model = loadHfModel(fixturePath(name));
      const tokens = Int32Array.from({ length: 4 * 10 }, (_, i) => 5 + ((i * 7) % 300));
      const memory = await collectMoments(model, tokens, 4, 10);
      const disk = await collectMoments(model, tokens, 4, 10, { maxBytes: 1, rowsPerBatch: 20 });
      expect(memory.storage).toBe('memory');
      expect(disk.storage).toBe('disk');
      expect(disk.passes).toBe(1);
      expect(disk.layers).toHaveLength(model.graph.layers.length);
      // Batches of 2 sequences give the same moments as one batch of 4, to float32 rounding of the in-graph sums.
      disk.layers.forEach((l, i) => {
        const m = memory.layers[i]!;
        expect(l.index).toBe(i);
        const close = (a: Float64Array, b: Float64Array) => {
          let scale = 0;
          let worst = 0;
          for (let k = 0; k < a.length; k++) {
            scale = Math.max(scale, Math.abs(b[k]!));
            worst = Math.max(worst, Math.abs(a[k]! - b[k]!));
          }
          expect(worst).toBeLessThanOrEqual(1e-5 * scale);
        };
        close(l.ffn.second, m.ffn.second);
        close(l.attention.mean, m.attention.mean);
      });
      // Written and read back exactly: the same batching gives the same bits on disk as in memory.
      const again = await collectMoments(model, tokens, 4, 10, { maxBytes: 1 });
      expect(Array.from(again.layers[1]!.ffn.second)).toEqual(Array.from(memory.layers[1]!.ffn.second));
      expect(Array.from(again.layers[0]!.attention.mean)).toEqual(Array.from(memory.layers[0]!.attention.mean));
      expect([...again.layers].map((l) => l.ffn.dim)).toEqual(model.graph.layers.map((l) => l.ffn.width));
      again.store.release();
      disk.store.release();
      expect(() => again.layers[0]!.ffn).toThrow(/released/);
    }
  });

  it('runs each layer in a session of its own piece of the graph, holding only that layer\'s weights', () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    const layerWeights = (i: number) => new Set([...model.graph.layers[i]!.attention.matrices, ...model.graph.layers[i]!.ffn.matrices].map((m) => m.name));
    const piece = layerPiece(model, 1, 32, [model.match.layers[1]!.output]);
    const names = new Set(piece.graph.initializer.map((t) => t.name!));
    for (const w of layerWeights(1)) expect(names.has(w)).toBe(true);
    for (const w of layerWeights(0)) expect(names.has(w)).toBe(false);
    // No embedding or LM head: every large initializer of the piece is one of layer 1's matrices.
    const large = piece.graph.initializer.filter((t) => t.dims.reduce((a, b) => a * Number(b), 1) >= 32 * 32);
    expect(large.every((t) => layerWeights(1).has(t.name!))).toBe(true);
    expect(piece.graph.input.map((i) => i.name)).toEqual(expect.arrayContaining([model.match.layers[0]!.output, 'past_key_values.1.key', 'past_key_values.1.value']));
    expect(piece.graph.input.map((i) => i.name)).not.toContain('past_key_values.0.key');
    const embeddings = embeddingPiece(model);
    expect(embeddings.graph.output.map((o) => o.name)).toEqual([model.match.layers[0]!.input]);
  });

  it('cuts layers at residual sums made inside fused norms (genai builder, onnxruntime optimizer): the moments of the torch-style twin', async () => {
    for (const name of ['llama-genai', 'qwen2-genai', 'bert-fused'] as const) {
      const twin = loadHfModel(twinFixturePath(name));
      const fused = loadHfModel(fixturePath(name));
      const tokens = Int32Array.from({ length: 2 * 9 }, (_, i) => 3 + ((i * 7) % 50));
      const [a, b] = [await collectMoments(fused, tokens, 2, 9), await collectMoments(twin, tokens, 2, 9)];
      a.layers.forEach((layer, i) => {
        for (const module of ['ffn', 'attention'] as const) {
          const [x, y] = [layer[module].second, b.layers[i]![module].second];
          const scale = Math.max(...Array.from(y, Math.abs));
          expect(Math.max(...Array.from(x, (v, k) => Math.abs(v - y[k]!)))).toBeLessThan(1e-4 * scale);
        }
      });
    }
  });

  it('reads external data in place: the same moments as the single-file model', async () => {
    const dir = path.join(root.dir, 'llama-tiny-external');
    generateModel({ ...DEFAULT_FIXTURES['llama-tiny'], variants: [], externalData: true }, dir);
    expect(fs.existsSync(path.join(dir, 'onnx', 'model.onnx_data'))).toBe(true);
    const tokens = Int32Array.from({ length: 3 * 8 }, (_, i) => 5 + ((i * 11) % 300));
    const external = await collectMoments(loadHfModel(dir), tokens, 3, 8);
    const inline = await collectMoments(loadHfModel(fixturePath('llama-tiny')), tokens, 3, 8);
    expect(Array.from(external.layers[1]!.ffn.second)).toEqual(Array.from(inline.layers[1]!.ffn.second));
    expect(Array.from(external.layers[0]!.attention.mean)).toEqual(Array.from(inline.layers[0]!.attention.mean));
  });

  it('runs on CUDA where it starts and falls back to the CPU with its reason (auto), or stops with a clear error (cuda)', async () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    const auto = await calibrate(model, { samples: 2, length: 8, seed: 5, device: 'auto' });
    let cudaError: string | undefined;
    try {
      await (await OrtAlgebra.open('cuda')).release();
    } catch (error) {
      cudaError = (error as Error).message;
    }
    if (cudaError === undefined) {
      expect(auto.summary.provider).toBe('cuda');
    } else {
      expect(cudaError).toMatch(/^the CUDA provider of onnxruntime cannot start: /);
      expect(auto.summary).toMatchObject({ provider: 'cpu', providerReason: expect.any(String) });
      clearCalibrationCache();
      await expect(calibrate(model, { samples: 2, length: 8, seed: 5, device: 'cuda' })).rejects.toThrow(/CUDA provider of onnxruntime cannot start/);
    }
  });

  it('is cached per model file, S, T and seed, and deterministic for a seed', async () => {
    const model = loadHfModel(fixturePath('llama-tiny'));
    const a = await calibrate(model, { samples: 4, length: 8, seed: 9 });
    expect(await calibrate(model, { samples: 4, length: 8, seed: 9 })).toBe(a);
    clearCalibrationCache();
    const b = await calibrate(model, { samples: 4, length: 8, seed: 9 });
    expect(b).not.toBe(a);
    expect(Array.from(b.layers[1]!.ffn.second)).toEqual(Array.from(a.layers[1]!.ffn.second));
    const c = await calibrate(model, { samples: 4, length: 8, seed: 10 });
    expect(Array.from(c.sequences.tokens)).not.toEqual(Array.from(a.sequences.tokens));
  });

  it('reads no file outside the model folder', async () => {
    // Load every module and native binding first, so only calibration's own reads are watched.
    await calibrate(loadHfModel(fixturePath('bert-tiny')), { samples: 2, length: 4 });
    await calibrate(loadHfModel(fixturePath('gpt2-tiny')), { samples: 2, length: 4 });
    for (const name of ['llama-tiny', 'bert-tiny']) {
      const dir = copyFixture(name);
      const model = loadHfModel(dir);
      const read: string[] = [];
      // The fs module object itself (the modules under test read it through it).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const realFs = require('fs') as Record<string, (...a: unknown[]) => unknown>;
      const watched = ['readFileSync', 'openSync', 'readdirSync', 'statSync', 'createReadStream', 'readSync'] as const;
      const spies = watched.map((fn) => {
        const original = realFs[fn]!.bind(realFs);
        return jest.spyOn(realFs, fn).mockImplementation((...args: unknown[]) => {
          if (typeof args[0] === 'string') read.push(args[0]);
          return original(...args);
        });
      });
      try {
        await calibrate(model, { samples: 3, length: 8, seed: 1 });
      } finally {
        for (const spy of spies) spy.mockRestore();
      }
      expect(read.length).toBeGreaterThan(0);
      for (const file of read) expect(path.resolve(file).startsWith(fs.realpathSync(dir)) || path.resolve(file).startsWith(dir)).toBe(true);
    }
  });
});
