/**
 * Every family added to the registry after the first eight, on its generator fixture (the family
 * as its Hugging Face modeling code computes it and optimum / torch.onnx export it): the matcher
 * finds one Attention and one FFN module per layer with the generator's heads, key-value heads,
 * head size and widths, and every module matrix holds exactly the generator's values (so every
 * capacity is the truth's); config.json is read with the family's keys.
 */
import { getMeasure, matrixCapacity } from '@zerolm/core';
import { DEFAULT_FIXTURES, ensureFixtures, FAMILY_FIXTURES, fixturePath, resolveSpec, truthLayers } from '@zerolm/test-fixtures';
import { readFileSync } from 'fs';
import { join } from 'path';
import { findFamily, loadHfModel } from '../src';

beforeAll(() => ensureFixtures([...FAMILY_FIXTURES]));

describe.each(FAMILY_FIXTURES)('%s', (name) => {
  const spec = resolveSpec(DEFAULT_FIXTURES[name]);

  it('is a registered family', () => {
    expect(findFamily(spec.family)).toBeDefined();
  });

  it("maps the generator's modules, heads, key-value heads, head size, widths and matrices", () => {
    const model = loadHfModel(fixturePath(name));
    const truth = truthLayers(spec)!;
    expect(model.graph.layers).toHaveLength(truth.length);
    model.graph.layers.forEach((layer, i) => {
      const t = truth[i]!;
      expect([layer.attention.heads, layer.attention.kvHeads, layer.attention.headDim, layer.ffn.width]).toEqual([t.heads, t.kvHeads, t.headDim, t.ffn]);
      const roles = [...layer.attention.matrices, ...layer.ffn.matrices].map((m) => m.role).sort();
      expect(roles).toEqual((Object.keys(t.matrices) as string[]).sort());
      for (const m of [...layer.attention.matrices, ...layer.ffn.matrices]) {
        const want = t.matrices[m.role as keyof typeof t.matrices]!();
        const got = Float32Array.from(m.values());
        expect(got.length).toBe(want.length);
        expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
        const measure = getMeasure('msv');
        expect(matrixCapacity(m, measure)).toBeCloseTo(matrixCapacity({ ...m, values: () => want, sumOfSquares: undefined }, measure), 10);
      }
    });
    // The activation as config.json names it under the family's key (Gemma: hidden_activation).
    const written = JSON.parse(readFileSync(join(fixturePath(name), 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(model.config.activation).toBe(written[findFamily(spec.family)!.keys.activation[0]!]);
  });
});
