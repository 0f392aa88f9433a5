// What a user's ES module does with the installed packages: prune a model folder, compare the
// result with its source, and load the pruned folder in a transformers.js pipeline.
import { prune } from '@zerolm/planner';
import { compareModels } from '@zerolm/compare';
import { env, pipeline } from '@huggingface/transformers';
import path from 'node:path';

const [source, out] = process.argv.slice(2);
const result = await prune(source, { targetParams: 0.5, out, force: true });
const report = await compareModels(source, [out], { runs: 2, warmup: 1, device: 'cpu' });

env.allowRemoteModels = false;
env.localModelPath = path.dirname(path.resolve(out));
const generate = await pipeline('text-generation', path.basename(out), { dtype: 'fp32' });
const [generated] = await generate('the', { max_new_tokens: 4, do_sample: false });

console.log(JSON.stringify({ params: result.planFile.params, compared: report.models.length, text: generated.generated_text }));
