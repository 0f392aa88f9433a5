/**
 * Calibration without data: sequences the model generates itself (decoders) or uniform tokens
 * (encoders), and the moments of the inputs of `down` and `o` over them.
 */
import { loadHfModel } from '@zerolm/adapters';
import { DataType, makeValueInfo } from '@zerolm/onnx';
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as path from 'path';
import {
  calibrate,
  calibrationSequences,
  clearCalibrationCache,
  collectMoments,
  specialTokenIds,
  type Calibration,
} from '../src';
import { cacheInputs, fullPassFeeds } from '@zerolm/runtime';
import { editableCopy, openEdited } from '../src/calibration/graph-copy';
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

  it('splits layers into several passes under a memory cap, with the same moments', async () => {
    const model = loadHfModel(fixturePath('bert-tiny'));
    const tokens = Int32Array.from({ length: 4 * 10 }, (_, i) => 5 + ((i * 7) % 300));
    const one = await collectMoments(model, tokens, 4, 10);
    const split = await collectMoments(model, tokens, 4, 10, { maxBytes: 1 });
    expect(one.passes).toBe(1);
    expect(split.passes).toBe(model.graph.layers.length);
    split.layers.forEach((l, i) => {
      expect(Array.from(l.ffn.second)).toEqual(Array.from(one.layers[i]!.ffn.second));
      expect(Array.from(l.attention.mean)).toEqual(Array.from(one.layers[i]!.attention.mean));
    });
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
