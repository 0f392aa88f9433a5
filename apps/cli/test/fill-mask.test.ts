/**
 * `zerolm score`, `prune` and `compare` on fill-mask exports (BertForMaskedLM): the masked-LM head
 * is reported as a head with its parameters apart, pruning leaves it whole, and the pruned folder
 * predicts in transformers.js' fill-mask pipeline. On the generator's export (logits only, as
 * optimum writes it) and, with the shared data, on the trained kjv-bert-tiny (logits and
 * last_hidden_state).
 */
import { ensureFixtures, fixturePath } from '@zerolm/test-fixtures';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { describeShared, sharedPaths } from '../../../packages/adapters/test/shared-data';
import { runCli } from './run-cli';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformers = require('@huggingface/transformers');

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-fill-mask-cli-'));
  ensureFixtures(['bert-mlm-tiny']);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function fillMask(model: string, text: string): Promise<{ token_str: string; score: number }[]> {
  transformers.env.allowRemoteModels = false;
  transformers.env.localModelPath = `${path.dirname(model)}/`;
  const fill = await transformers.pipeline('fill-mask', path.basename(model), { dtype: 'fp32' });
  try {
    return await fill(text, { top_k: 3 });
  } finally {
    await fill.dispose();
  }
}

function scorePruneCompare(model: string, out: string, text: string[]): void {
  const score = runCli(['score', model]);
  expect(score.code).toBe(0);
  expect(score.stdout).toMatch(/^task heads \(not scored, never pruned\): masked-lm \d+x\d+ -> \d+x\d+ \([\d.]+K\)$/m);
  const before = JSON.parse(runCli(['score', model, '--json']).stdout);
  expect(before.heads.map((h: { kind: string }) => h.kind)).toEqual(['masked-lm']);

  const pruned = runCli(['prune', model, '--out', out, '--target-params', '0.5', '--evals', '100', '--calibration-samples', '8', '--calibration-length', '16']);
  expect(pruned.code).toBe(0);
  expect(pruned.stdout).toContain(`wrote ${out}`);
  const after = JSON.parse(runCli(['score', out, '--json']).stdout);
  expect(after.params.modules).toBeLessThanOrEqual(before.params.modules / 2);
  expect(after.heads).toEqual(before.heads);
  expect(after.params.heads).toBe(before.params.heads);

  const compared = runCli(['compare', model, out, '--runs', '1', '--warmup', '0', '--max-samples', '40', '--text', text[0]!]);
  expect(compared.code).toBe(0);
  expect(compared.stdout).toMatch(new RegExp(`^${path.basename(out)} .* 0\\.\\d{6} +0\\.\\d{6}$`, 'm'));
}

describe('fill-mask export (bert-mlm-tiny)', () => {
  it('scores with the masked-LM head apart, prunes, compares on the logits, and the pruned folder fills masks', async () => {
    const text = path.join(dir, 'text.txt');
    fs.writeFileSync(text, 'the keeper of the library found the farm\nthe stranger walked to the north hill\n');
    const out = path.join(dir, 'mlm-p50');
    scorePruneCompare(fixturePath('bert-mlm-tiny'), out, [text]);
    const compared = JSON.parse(runCli(['compare', fixturePath('bert-mlm-tiny'), out, '--runs', '1', '--warmup', '0', '--text', text, '--json']).stdout);
    expect(compared.models[1].fidelity.output).toBe('logits');
    const predictions = await fillMask(out, 'the keeper of the [MASK] found the farm');
    expect(predictions).toHaveLength(3);
    expect(predictions[0]!.score).toBeGreaterThan(0);
  });
});

const KJV_BERT = path.join(sharedPaths.modelsDir, 'kjv-bert-tiny');
describeShared('fill-mask export (the trained kjv-bert-tiny)', () => {
  it('scores, prunes to half, compares on last_hidden_state, and the pruned folder fills masks as the source does', async () => {
    const out = path.join(dir, 'kjv-bert-p50');
    scorePruneCompare(KJV_BERT, out, [path.join(KJV_BERT, 'heldout.txt')]);
    const compared = JSON.parse(runCli(['compare', KJV_BERT, out, '--runs', '1', '--warmup', '0', '--max-samples', '20', '--json']).stdout);
    expect(compared.models[1].fidelity.output).toBe('last_hidden_state');
    const text = 'and the lord spake unto moses , [MASK] :';
    const [source] = await fillMask(KJV_BERT, text);
    const pruned = await fillMask(out, text);
    expect(pruned.map((p) => p.token_str)).toContain(source!.token_str);
  });
}, [KJV_BERT]);
