import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { countParams } from '@zerolm/core';
import { loadBaselineCsv, loadBenchmark, loadFlexibertBaselines, loadFlexibertBenchmark, loadLtsBenchmark } from '../src';
import { describeShared, sharedPaths } from './shared-data';

describe('benchmark loaders: malformed files give errors that name the file and the problem', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'zerolm-spec-loaders-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string): string => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  const flexEntry = (id: number, glue?: number) => ({
    id,
    ...(glue === undefined ? {} : { scores: { glue } }),
    hparams: {
      model_hparam_overrides: {
        hidden_size: 256,
        nas_config: {
          encoder_layers: [
            { operation_type: 'SA', operation_parameter: 'SDP', num_operation_heads: 4, feed_forward_dimension: 512, num_feed_forward: 1 },
          ],
        },
      },
    },
  });

  it('reads a valid FlexiBERT file', () => {
    const file = write('flex.json', JSON.stringify([flexEntry(1, 70.5), flexEntry(2, 72)]));
    const records = loadFlexibertBenchmark(file);
    expect(records.map((r) => [r.id, r.groundTruth, r.glue, r.higherIsBetter])).toEqual([
      ['1', 70.5, 70.5, true],
      ['2', 72, 72, true],
    ]);
  });

  it('names a missing file, invalid JSON, a non-array and a bad entry', () => {
    const missing = path.join(dir, 'nope.json');
    expect(() => loadFlexibertBenchmark(missing)).toThrow(`cannot read FlexiBERT benchmark file "${missing}"`);
    const broken = write('broken.json', '[{"id": 1,');
    expect(() => loadFlexibertBenchmark(broken)).toThrow(`FlexiBERT benchmark file "${broken}" is not valid JSON`);
    const object = write('object.json', '{"id": 1}');
    expect(() => loadFlexibertBenchmark(object)).toThrow(/object.json": the top level must be an array \(got an object\)/);
    const noGlue = write('noglue.json', JSON.stringify([flexEntry(1, 70), flexEntry(9)]));
    expect(() => loadFlexibertBenchmark(noGlue)).toThrow(/noglue.json", entry 1 \(id 9\): scores.glue is missing/);
    const duplicate = write('dup.json', JSON.stringify([flexEntry(1, 70), flexEntry(1, 71)]));
    expect(() => loadFlexibertBenchmark(duplicate)).toThrow(/dup.json": duplicate architecture id 1/);
    const empty = write('empty.json', '[]');
    expect(() => loadFlexibertBenchmark(empty)).toThrow(/lists no architectures/);
  });

  it('reads LTS entries with perplexity as ground truth (lower is better) and rejects bad ones', () => {
    const config = {
      n_layer: 1, d_model: 64, n_head: [2], d_inner: [128], n_token: 100, d_embed: 64, div_val: 1,
      cutoffs: [], tie_projs: [], adaptive: false, tgt_len: 16, weight_init_std: 0.02,
    };
    const file = write('lts.json', JSON.stringify([{ id: 'a', model_config: config, valid_ppl: 30.5, test_ppl: 31 }]));
    const [record] = loadLtsBenchmark(file);
    expect([record!.id, record!.groundTruth, record!.validPpl, record!.testPpl, record!.higherIsBetter]).toEqual([
      'a', 30.5, 30.5, 31, false,
    ]);
    const noPpl = write('noppl.json', JSON.stringify([{ id: 'a', model_config: config }]));
    expect(() => loadLtsBenchmark(noPpl)).toThrow(/noppl.json", entry 0 \(id a\): valid_ppl is missing/);
    const bare = write('bare.json', JSON.stringify([config]));
    expect(() => loadLtsBenchmark(bare)).toThrow(/bare.json", entry 0: expected an object \{id, model_config, valid_ppl, ...\}/);
  });

  it('reads a baseline CSV (quoted fields, CRLF, nan) and names bad rows and columns', () => {
    const file = write('base.csv', 'ID,GLUE Score,"Number of Parameters"\r\n0,70.5,100\r\n1,71,nan\r\n');
    const baselines = loadFlexibertBaselines(file);
    expect(baselines.columns).toEqual(['GLUE Score', 'Number of Parameters']);
    expect(baselines.byId.get('0')).toEqual({ 'GLUE Score': 70.5, 'Number of Parameters': 100 });
    expect(baselines.byId.get('1')!['Number of Parameters']).toBeNaN();

    const noId = write('noid.csv', 'Name,Score\na,1\n');
    expect(() => loadFlexibertBaselines(noId)).toThrow(/noid.csv" has no "ID" column \(columns: Name, Score\)/);
    const text = write('text.csv', 'ID,Score\n0,1\n1,high\n');
    expect(() => loadFlexibertBaselines(text)).toThrow(/text.csv", data row 2 \(ID 1\), column "Score": not a number \("high"\)/);
    const short = write('short.csv', 'ID,Score,Other\n0,1\n');
    expect(() => loadFlexibertBaselines(short)).toThrow(/short.csv", data row 1 has 2 fields, the header 3/);
    const dup = write('dupid.csv', 'ID,Score\n0,1\n0,2\n');
    expect(() => loadFlexibertBaselines(dup)).toThrow(/duplicate ID 0/);
  });

  it('aligns baseline columns with the given ids, leaving out the ground truth', () => {
    const file = write('aligned.csv', 'ID,GLUE Score,Number of Parameters,proxy\n0,70,100,0.5\n1,71,200,-1\n');
    const columns = loadBaselineCsv(file, ['1', '0']);
    expect(Object.keys(columns)).toEqual(['Number of Parameters', 'proxy']);
    expect([...columns['Number of Parameters']!]).toEqual([200, 100]);
    expect([...columns['proxy']!]).toEqual([-1, 0.5]);
    expect(() => loadBaselineCsv(file, ['0', '7', '8'])).toThrow(/no row for 2 of 3 architectures \(first: 7, 8\)/);
  });

  it('loads a benchmark by name with higher-is-better ground truth', () => {
    const flex = write('named.json', JSON.stringify([flexEntry(5, 70.5)]));
    const loaded = loadBenchmark('flexibert', flex);
    expect(loaded.entries.map((e) => [e.id, e.groundTruth, e.graph.name])).toEqual([['5', 70.5, 'flexibert-5']]);
    expect(loaded.groundTruthLabel).toBe('average GLUE');
    expect(() => loadBenchmark('nas-bench-201', flex)).toThrow(/unknown benchmark "nas-bench-201" \(known: flexibert, lts-gpt2\)/);
  });
});

describeShared(
  'benchmark loaders on the shared data',
  () => {
    it('loads 350 FlexiBERT entries with GLUE, and their baseline rows', () => {
      const records = loadFlexibertBenchmark(sharedPaths.flexibertBenchmark);
      expect(records).toHaveLength(350);
      expect(new Set(records.map((r) => r.id)).size).toBe(350);
      for (const r of records) expect(r.glue).toBeGreaterThan(0);
      const baselines = loadFlexibertBaselines(sharedPaths.flexibertBaselines);
      expect(baselines.columns).toEqual(expect.arrayContaining(['GLUE Score', 'Number of Parameters', 'lpzero']));
      for (const r of records) expect(baselines.byId.get(r.id)?.['GLUE Score']).toBeCloseTo(r.glue, 6);
    });

    it('loads both benchmarks by name: graphs, negated perplexity, aligned baselines', () => {
      const flex = loadBenchmark('flexibert', sharedPaths.flexibertBenchmark);
      expect(flex.entries).toHaveLength(350);
      const baselines = loadBaselineCsv(sharedPaths.flexibertBaselines, flex.entries.map((e) => e.id));
      expect(baselines['GLUE Score']).toBeUndefined();
      flex.entries.forEach((e, i) => expect(countParams(e.graph).total).toBe(baselines['Number of Parameters']![i]));
      const lts = loadBenchmark('lts-gpt2', sharedPaths.ltsBenchmark);
      expect(lts.info.higherIsBetter).toBe(false);
      expect(lts.groundTruthLabel).toBe('negated validation perplexity');
      for (const e of lts.entries) expect(e.groundTruth).toBe(-e.reported);
    });

    it('loads 200 LTS entries with validation perplexity', () => {
      const records = loadLtsBenchmark(sharedPaths.ltsBenchmark);
      expect(records).toHaveLength(200);
      for (const r of records) {
        expect(r.higherIsBetter).toBe(false);
        expect(r.validPpl).toBeGreaterThan(1);
        expect(r.entry.model_config.n_head).toHaveLength(r.entry.model_config.n_layer);
      }
    });
  },
  [sharedPaths.flexibertBenchmark, sharedPaths.flexibertBaselines, sharedPaths.ltsBenchmark],
);
