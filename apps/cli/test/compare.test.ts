import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expectCleanError, runCli } from './run-cli';

const FAST = ['--runs', '2', '--warmup', '1', '--max-samples', '8'];

describe('zerolm compare', () => {
  let dir: string;
  let llamaCopy: string;
  beforeAll(() => {
    ensureFixtures(['llama-tiny', 'llama-nonuniform', 'bert-tiny', 'bert-nonuniform']);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-compare-cli-'));
    llamaCopy = path.join(dir, 'llama-copy');
    fs.cpSync(fixturePath('llama-tiny'), llamaCopy, { recursive: true });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('prints an aligned table with one row per folder, and nothing on stderr off a terminal', () => {
    const result = runCli(['compare', fixturePath('llama-tiny'), llamaCopy, fixturePath('llama-nonuniform'), ...FAST]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^2 variant\(s\) of .*llama-tiny \(decoders, fp32\); ZeroLM score: measure msv, alpha 0.5$/);
    expect(lines[1]).toMatch(/^text: bundled sample, \d+ lines, \d+ tokens; fidelity over 8 windows of 64 tokens \(512 predictions\)$/);
    expect(lines[2]).toMatch(/^latency: batch 8 x 64 tokens, median and p90 of 2 runs after 1 warm-up; provider (cpu|cuda)/);
    const header = lines.find((l) => l.startsWith('model'))!;
    expect(header.split(/\s{2,}/)).toEqual(['model', 'params a+f', 'params', 'onnx', 'score', 'median ms', 'p90 ms', 'top-1', 'KL', 'ppl']);
    const row = (name: string) => lines.find((l) => l.startsWith(name))!.split(/\s{2,}/);
    expect(row('llama-tiny (ref)')[7]).toBe('1.0000');
    expect(row('llama-copy').slice(7, 9)).toEqual(['1.0000', '0']);
    expect(row('llama-copy')[9]).toBe(row('llama-tiny (ref)')[9]);
    expect(Number(row('llama-nonuniform')[8])).toBeGreaterThan(0.01);
    // Right-aligned numeric columns end at the same character in every row.
    const end = header.length;
    for (const name of ['llama-tiny (ref)', 'llama-copy', 'llama-nonuniform']) expect(lines.find((l) => l.startsWith(name))!.length).toBe(end);
  });

  it('prints JSON with one object per folder and writes the plot', () => {
    const plot = path.join(dir, 'compare.svg');
    const result = runCli(['compare', fixturePath('bert-tiny'), fixturePath('bert-nonuniform'), ...FAST, '--json', '--plot', plot, '--device', 'cpu', '--batch', '3']);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ kind: 'encoder', seqLen: 64, batch: 3, runs: 2, warmup: 1, device: 'cpu' });
    expect(report.models).toHaveLength(2);
    const [reference, variant] = report.models;
    expect(reference).toMatchObject({ label: 'bert-tiny', role: 'reference', modelType: 'bert', provider: 'cpu', fidelity: { kind: 'encoder', tokenCosine: 1 } });
    expect(variant).toMatchObject({ label: 'bert-nonuniform', role: 'variant', fidelity: { kind: 'encoder', sentences: 8 } });
    expect(variant.fidelity.tokenCosine).toBeLessThan(0.9);
    expect(variant.latency.medianMs).toBeGreaterThan(0);
    expect(variant.onnxBytes).toBe(fs.statSync(path.join(fixturePath('bert-nonuniform'), 'onnx/model.onnx')).size);
    const svg = fs.readFileSync(plot, 'utf8');
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('>parameters (total)</text>');
    expect(svg).toContain('cosine similarity of token embeddings');
    expect(svg).toContain('>bert-tiny (reference)</text>');
    expect(svg).toContain('>bert-nonuniform</text>');
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('--device cuda runs on CUDA or says in one line why it cannot', () => {
    const result = runCli(['compare', fixturePath('llama-tiny'), llamaCopy, '--device', 'cuda', '--json', ...FAST]);
    if (result.code === 0) expect(JSON.parse(result.stdout).models.map((m: { provider: string }) => m.provider)).toEqual(['cuda', 'cuda']);
    else expectCleanError(result, /the CUDA provider of onnxruntime cannot start/);
  });

  it('fails cleanly on folders it cannot compare', () => {
    const noConfig = path.join(dir, 'no-config');
    fs.cpSync(fixturePath('llama-tiny'), noConfig, { recursive: true });
    fs.rmSync(path.join(noConfig, 'config.json'));
    const noOnnx = path.join(dir, 'no-onnx');
    fs.cpSync(fixturePath('llama-tiny'), noOnnx, { recursive: true });
    fs.rmSync(path.join(noOnnx, 'onnx/model.onnx'));
    const garbage = path.join(dir, 'garbage');
    fs.cpSync(fixturePath('llama-tiny'), garbage, { recursive: true });
    fs.writeFileSync(path.join(garbage, 'onnx/model.onnx'), 'not an onnx file');
    const otherTokenizer = path.join(dir, 'other-tokenizer');
    fs.cpSync(fixturePath('llama-tiny'), otherTokenizer, { recursive: true });
    const tokenizer = JSON.parse(fs.readFileSync(path.join(otherTokenizer, 'tokenizer.json'), 'utf8'));
    tokenizer.normalizer.lowercase = !tokenizer.normalizer.lowercase;
    fs.writeFileSync(path.join(otherTokenizer, 'tokenizer.json'), JSON.stringify(tokenizer));

    const ref = fixturePath('llama-tiny');
    const cases: [string[], RegExp][] = [
      [['compare', ref, noConfig], /no config.json in .*no-config: not a Hugging Face model folder/],
      [['compare', ref, noOnnx], /no onnx\/model.onnx in .*no-onnx/],
      [['compare', ref, garbage], /not a valid ONNX model \(.*garbage\/onnx\/model.onnx\)/],
      [['compare', ref, otherTokenizer], /tokenizers differ: .*other-tokenizer\/tokenizer.json is not the same as .*llama-tiny\/tokenizer.json/],
      [['compare', ref, fixturePath('bert-tiny')], /is an encoder \(bert\) but the reference .* is a decoder \(llama\)/],
      [['compare', ref, path.join(dir, 'missing')], /missing does not exist/],
      [['compare', ref], /Not enough non-option arguments: got 1, need at least 2/],
      [['compare', ref, llamaCopy, '--device', 'tpu'], /--device must be one of auto, cpu, cuda \(got "tpu"\)/],
      [['compare', ref, llamaCopy, '--plot-metric', 'nope'], /--plot-metric must be one of kl, top1, token-cosine, sentence-cosine/],
      [['compare', ref, llamaCopy, '--seq-len', '1'], /--seq-len must be an integer >= 2/],
      [['compare', ref, llamaCopy, '--text', path.join(dir, 'none.txt')], /text file .*none.txt does not exist/],
      [['compare', ref, llamaCopy, '--max-samples', '1', '--runs', '1', '--plot', path.join(dir, 'p.svg'), '--plot-metric', 'token-cosine'], /applies to encoders; these models are decoders/],
      [['compare', ref, llamaCopy, '--max-samples', '1', '--runs', '1', '--plot', path.join(dir, 'nowhere/p.svg')], /folder .*nowhere does not exist/],
    ];
    for (const [args, pattern] of cases) expectCleanError(runCli(args), pattern);
  });
});
