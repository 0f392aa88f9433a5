import {
  countParams,
  fullPlan,
  unitCapacities,
  groupSlices,
  prunedGraph,
  validatePlan,
  type Layer,
  type MatrixRole,
  type ModuleGraph,
  type WeightMatrix,
} from '../src';

/** A matrix whose entry (r, c) is 1000 * r + c, so a gathered slice shows where it came from. */
function indexMatrix(role: MatrixRole, rows: number, cols: number): WeightMatrix {
  const data = Float64Array.from({ length: rows * cols }, (_, i) => 1000 * Math.floor(i / cols) + (i % cols));
  return { name: `${role}`, role, rows, cols, values: () => data };
}

/** hidden 8, 4 query heads of 2 sharing 2 key-value heads, gated FFN of width 5, q/k/v biases. */
function gqaGraph(): ModuleGraph {
  const layer = (index: number): Layer => ({
    index,
    attention: {
      kind: 'attention',
      heads: 4,
      kvHeads: 2,
      headDim: 2,
      matrices: [indexMatrix('q', 8, 8), indexMatrix('k', 8, 4), indexMatrix('v', 8, 4), indexMatrix('o', 8, 8)],
      biases: [
        { name: 'bq', role: 'q', length: 8 },
        { name: 'bk', role: 'k', length: 4 },
        { name: 'bo', role: 'o', length: 8 },
      ],
    },
    ffn: {
      width: 5,
      activation: 'silu',
      matrices: [indexMatrix('up', 8, 5), indexMatrix('gate', 8, 5), indexMatrix('down', 5, 8)],
      biases: [],
    },
  });
  return { name: 'gqa', family: 'test', hiddenSize: 8, layers: [layer(0), layer(1)], otherParams: 100 };
}

describe('structured units', () => {
  it('gives a key-value group its query heads, its k/v head and the matching o rows', () => {
    const attention = gqaGraph().layers[0]!.attention;
    expect(groupSlices(attention, 0)).toEqual({ query: [0, 4], keyValue: [0, 2] });
    expect(groupSlices(attention, 1)).toEqual({ query: [4, 8], keyValue: [2, 4] });
  });

  it('keeps every matrix as it is under the full plan', () => {
    const graph = gqaGraph();
    const pruned = prunedGraph(graph, fullPlan(graph));
    expect(countParams(pruned)).toEqual(countParams(graph));
    pruned.layers.forEach((layer, i) => {
      layer.attention.matrices.forEach((m, j) => expect(m).toBe(graph.layers[i]!.attention.matrices[j]));
    });
  });

  it('slices the coupled rows and columns of the kept units', () => {
    const graph = gqaGraph();
    const pruned = prunedGraph(graph, {
      layers: [
        { index: 0, dropped: false, keptGroups: [1], keptNeurons: [0, 3] },
        { index: 1, dropped: true, keptGroups: [], keptNeurons: [] },
      ],
    });
    expect(pruned.layers).toHaveLength(1);
    expect(pruned.otherParams).toBeUndefined();
    const layer = pruned.layers[0]!;
    expect([layer.attention.heads, layer.attention.kvHeads, layer.ffn.width]).toEqual([2, 1, 2]);
    const byRole = (role: MatrixRole) => [...layer.attention.matrices, ...layer.ffn.matrices].find((m) => m.role === role)!;
    // q keeps columns 4..7 (query heads 2 and 3), k and v columns 2..3, o rows 4..7.
    expect([byRole('q').rows, byRole('q').cols]).toEqual([8, 4]);
    expect(Array.from(byRole('q').values().slice(0, 4))).toEqual([4, 5, 6, 7]);
    expect(Array.from(byRole('k').values().slice(0, 2))).toEqual([2, 3]);
    expect([byRole('o').rows, byRole('o').cols]).toEqual([4, 8]);
    expect(byRole('o').values()[0]).toBe(4000);
    expect(Array.from(byRole('up').values().slice(0, 2))).toEqual([0, 3]);
    expect(Array.from(byRole('down').values().filter((_, i) => i % 8 === 0))).toEqual([0, 3000]);
    expect(layer.attention.biases.map((b) => b.length)).toEqual([4, 2, 8]);
    // Parameters: q 8x4 + k 8x2 + v 8x2 + o 4x8 + biases 4 + 2 + 8; FFN 3 x 8x2.
    expect(countParams(pruned).modules).toBe(32 + 16 + 16 + 32 + 14 + 48);
  });

  it('rejects plans that do not fit the graph', () => {
    const graph = gqaGraph();
    const plan = fullPlan(graph);
    expect(() => validatePlan(graph, { layers: plan.layers.slice(1) })).toThrow(/plan has 1 layers, the model 2/);
    expect(() => validatePlan(graph, { layers: [{ ...plan.layers[0]!, keptGroups: [2] }, plan.layers[1]!] })).toThrow(/below 2/);
    expect(() => validatePlan(graph, { layers: [{ ...plan.layers[0]!, keptNeurons: [1, 0] }, plan.layers[1]!] })).toThrow(/ascending/);
    expect(() => validatePlan(graph, { layers: [{ ...plan.layers[0]!, keptGroups: [] }, plan.layers[1]!] })).toThrow(/drop the layer/);
  });
});

describe('unitCapacities', () => {
  it('measures each unit on its coupled slices, zero for an all-zero unit', () => {
    const graph = gqaGraph();
    const layer = graph.layers[0]!;
    // Zero kv group 0 everywhere: q columns 0..3, k/v columns 0..1, o rows 0..3.
    const zeroed = (m: WeightMatrix): WeightMatrix => {
      const data = Float64Array.from(m.values());
      for (let r = 0; r < m.rows; r++) {
        for (let c = 0; c < m.cols; c++) {
          const inGroup0 = m.role === 'o' ? r < 4 : m.role === 'q' ? c < 4 : m.role === 'k' || m.role === 'v' ? c < 2 : false;
          if (inGroup0) data[r * m.cols + c] = 0;
        }
      }
      return { ...m, values: () => data };
    };
    const planted = { ...layer, attention: { ...layer.attention, matrices: layer.attention.matrices.map(zeroed) } };
    const sumOfSquares = { ofMatrix: (m: { data: ArrayLike<number> }) => Array.from(m.data).reduce((s, v) => s + v * v, 0) };
    const caps = unitCapacities(planted, sumOfSquares);
    expect(caps.groups[0]).toBe(0);
    expect(caps.groups[1]).toBeGreaterThan(0);
    // Neuron j: column j of up and gate (rows 0..7), row j of down (cols 0..7).
    const expectedNeuron = (j: number) => {
      let s = 0;
      for (let r = 0; r < 8; r++) s += 2 * (1000 * r + j) ** 2;
      for (let c = 0; c < 8; c++) s += (1000 * j + c) ** 2;
      return s;
    };
    expect(Array.from(caps.neurons)).toEqual([0, 1, 2, 3, 4].map(expectedNeuron));
  });
});
