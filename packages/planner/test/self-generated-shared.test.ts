/**
 * The default importance and the correction on the two trained decoders of the shared folder:
 * the attention ranking takes the KL path (every layer's candidates within 96 passes), the
 * calibration is self-generated from BOS, and the least-squares refit brings a pruned model's
 * predictions closer to the source's than plain slicing of the same units. (The perplexity
 * table against random selections is the quality benchmark, `npm run bench:quality`.)
 */
import { join } from 'path';
import { compareModels } from '@zerolm/compare';
import { clearCalibrationCache, prune } from '../src';
import { describeShared, sharedPaths } from '../../adapters/test/shared-data';
import { tempRoot } from '../../export/test/export-helpers';

const MODELS = [
  ['kjv-llama-tiny', 3 * 2],
  ['kjv-gpt2-tiny', 3 * (4 + 3 + 2)],
] as const;

describeShared(
  'self-generated importance and refit on the shared trained decoders',
  () => {
    const root = tempRoot('self-generated-shared');
    afterAll(() => {
      root.remove();
      clearCalibrationCache();
    });

    it.each(MODELS)('%s: KL attention ranking, and the refit beats plain slicing of the same units', async (name, passes) => {
      const source = join(sharedPaths.modelsDir, name);
      const outs = { refit: join(root.dir, `${name}-refit`), none: join(root.dir, `${name}-none`) };
      const results = {
        refit: await prune(source, { targetParams: 0.5, search: 'uniform', correction: 'refit', out: outs.refit }),
        none: await prune(source, { targetParams: 0.5, search: 'uniform', correction: 'none', out: outs.none }),
      };
      for (const result of Object.values(results)) {
        expect(result.planFile.importance).toMatchObject({ rule: 'self-generated', attention: { method: 'kl', passes } });
        expect(result.planFile.importance.ffn?.every((f) => f.method === 'obs')).toBe(true);
        expect(result.planFile.calibration).toMatchObject({ samples: 32, length: 64, seed: 0, source: 'self-generated', bos: 2, eos: 3 });
      }
      // The same units either way: only the correction differs.
      expect(results.refit.plan.plan).toEqual(results.none.plan.plan);
      const report = await compareModels(source, [outs.refit, outs.none], { text: join(source, 'heldout.txt'), seqLen: 64, maxSamples: 48, runs: 1, warmup: 0 });
      const [, refit, none] = report.models;
      if (refit!.fidelity.kind !== 'decoder' || none!.fidelity.kind !== 'decoder') throw new Error('expected decoders');
      expect(refit!.fidelity.klDivergence).toBeLessThan(none!.fidelity.klDivergence);
      expect(refit!.fidelity.perplexity).toBeLessThan(none!.fidelity.perplexity);
    });
  },
  [sharedPaths.modelsDir],
);
