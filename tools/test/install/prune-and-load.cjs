// The same as prune-and-load.mjs, from a CommonJS script.
const { prune } = require('@zerolm/planner');
const { compareModels } = require('@zerolm/compare');
const { env, pipeline } = require('@huggingface/transformers');
const path = require('node:path');

async function main() {
  const [source, out] = process.argv.slice(2);
  const result = await prune(source, { targetParams: 0.5, out, force: true });
  const report = await compareModels(source, [out], { runs: 2, warmup: 1, device: 'cpu' });

  env.allowRemoteModels = false;
  env.localModelPath = path.dirname(path.resolve(out));
  const generate = await pipeline('text-generation', path.basename(out), { dtype: 'fp32' });
  const [generated] = await generate('the', { max_new_tokens: 4, do_sample: false });

  console.log(JSON.stringify({ params: result.planFile.params, compared: report.models.length, text: generated.generated_text }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
