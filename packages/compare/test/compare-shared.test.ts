/**
 * The perplexity protocol of `compare` is the one the trained tiny decoders were evaluated with
 * in PyTorch (shared/models/README.md): over heldout.txt, each verse encoded as
 * `[CLS] words [SEP]`, all verses as one token stream, windows of 64 inputs scored on the next 64
 * tokens, the final partial window dropped. compare must reproduce `heldout_perplexity_torch`.
 * The two models share their tokenizer, so one run measures both (and the second against the
 * first: two independently trained models of the same text).
 */
import * as fs from 'fs';
import * as path from 'path';
import { describeShared, sharedPaths } from '../../adapters/test/shared-data';
import { compareModels, type DecoderFidelity } from '../src';

const llama = path.join(sharedPaths.modelsDir, 'kjv-llama-tiny');
const gpt2 = path.join(sharedPaths.modelsDir, 'kjv-gpt2-tiny');

function torchPerplexity(dir: string): number {
  return JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).zerolm_test.heldout_perplexity_torch as number;
}

describeShared(
  'compare on the trained decoders',
  () => {
    it('reproduces the PyTorch held-out perplexity of both models to 1e-5', async () => {
      const report = await compareModels(llama, [llama, gpt2], { text: path.join(llama, 'heldout.txt'), seqLen: 64, batch: 32, runs: 1, warmup: 0, device: 'cpu' });
      expect(report.text.lines).toBe(1556);
      const [reference, self, other] = report.models.map((m) => m.fidelity as DecoderFidelity);
      for (const [fidelity, dir] of [[reference, llama], [self, llama], [other, gpt2]] as const) {
        expect(Math.abs(fidelity!.perplexity / torchPerplexity(dir) - 1)).toBeLessThan(1e-5);
      }
      expect(self!.klDivergence).toBeLessThan(1e-9);
      expect(self!.top1Agreement).toBe(1);
      // Two models trained on the same text agree often but not always.
      expect(other!.klDivergence).toBeGreaterThan(0.01);
      expect(other!.top1Agreement).toBeGreaterThan(0.3);
      expect(other!.top1Agreement).toBeLessThan(1);
    });
  },
  [llama, gpt2],
);
