import { Rng } from '@zerolm/core';
import * as path from 'path';
import {
  AttributeType,
  DataType,
  GraphIndex,
  OnnxFormatError,
  floatAttribute,
  intAttribute,
  intsAttribute,
  loadModel,
  makeAttribute,
  makeGraph,
  makeNode,
  makeTensor,
  makeValueInfo,
  stringAttribute,
  tensorAttribute,
  type GraphProto,
  type NodeProto,
} from '../src';
import { describeShared, sharedPaths } from './helpers';

/**
 *        x ──> MatMul(w) ──> a ──> Relu ──> b ──> Add ──> y
 *                             └──> Sigmoid ──> c ──┘
 *   Constant nodes: k (tensor), f (value_float), ints (value_ints)
 */
function diamond(): GraphProto {
  return makeGraph({
    name: 'diamond',
    nodes: [
      makeNode('Constant', [], ['k'], { value: makeTensor('', [2], new BigInt64Array([1n, -1n])) }, { name: 'const_k' }),
      makeNode('Constant', [], ['f'], { value_float: makeAttribute('value_float', 2, AttributeType.FLOAT) }, { name: 'const_f' }),
      makeNode('Constant', [], ['ints'], { value_ints: [3, 4, 5] }, { name: 'const_ints' }),
      makeNode('MatMul', ['x', 'w'], ['a'], {}, { name: 'mm' }),
      makeNode('Relu', ['a'], ['b'], {}, { name: 'relu' }),
      makeNode('Sigmoid', ['a'], ['c'], {}, { name: 'sigmoid' }),
      makeNode('Add', ['b', 'c'], ['y'], {}, { name: 'add' }),
    ],
    inputs: [makeValueInfo('x', DataType.FLOAT, [1, 2]), makeValueInfo('w', DataType.FLOAT, [2, 2])],
    outputs: [makeValueInfo('y', DataType.FLOAT, [1, 2])],
    initializers: [makeTensor('w', [2, 2], new Float32Array([1, 2, 3, 4]))],
  });
}

const names = (nodes: readonly NodeProto[]): (string | undefined)[] => nodes.map((n) => n.name);

describe('GraphIndex', () => {
  it('indexes producers, consumers, initializers and inputs', () => {
    const index = new GraphIndex(diamond());
    expect(index.producer('a')?.name).toBe('mm');
    expect(index.producer('x')).toBeUndefined();
    expect(names(index.consumers('a'))).toEqual(['relu', 'sigmoid']);
    expect(index.consumers('y')).toEqual([]);
    expect(index.initializer('w')?.dims).toEqual([2, 2]);
    expect(index.isRuntimeInput('x')).toBe(true);
    expect(index.isRuntimeInput('w')).toBe(false); // listed as input, but an initializer overrides it
    expect(index.isGraphOutput('y')).toBe(true);
    expect(names(index.nodesOfType('Constant'))).toEqual(['const_k', 'const_f', 'const_ints']);
    expect(index.position(index.producer('y') as NodeProto)).toBe(6);
  });

  it('lists a node consuming the same tensor twice once', () => {
    const graph = makeGraph({ nodes: [makeNode('Mul', ['x', 'x'], ['y'])], inputs: [], outputs: [] });
    expect(new GraphIndex(graph).consumers('x')).toHaveLength(1);
  });

  it('gives constant values of initializers and of every Constant form', () => {
    const index = new GraphIndex(diamond());
    expect(index.constantValue('w')).toEqual(new Float32Array([1, 2, 3, 4]));
    expect(index.constantValue('k')).toEqual(new Float64Array([1, -1]));
    expect(index.constantValue('k', { int64: 'bigint' })).toEqual(new BigInt64Array([1n, -1n]));
    expect(index.constantValue('f')).toEqual(new Float32Array([2]));
    expect(index.constantTensor('f')?.dims).toEqual([]);
    expect(index.constantValue('ints')).toEqual(new Float64Array([3, 4, 5]));
    expect(index.constantValue('a')).toBeUndefined();
    expect(index.isConstant('ints')).toBe(true);
    expect(index.isConstant('x')).toBe(false);
  });

  it('orders nodes topologically, keeping an already sorted graph as it is', () => {
    const graph = diamond();
    expect(new GraphIndex(graph).topologicalOrder()).toEqual(graph.node);
    const shuffled = { ...graph, node: new Rng(7).shuffle([...graph.node]) };
    const order = new GraphIndex(shuffled).topologicalOrder();
    const seen = new Set<string>(['x', 'w']);
    for (const node of order) {
      for (const input of node.input) expect(seen.has(input)).toBe(true);
      for (const output of node.output) seen.add(output);
    }
    expect(order).toHaveLength(graph.node.length);
  });

  it('reports a cycle', () => {
    const graph = makeGraph({
      name: 'loop',
      nodes: [makeNode('Relu', ['b'], ['a'], {}, { name: 'r1' }), makeNode('Relu', ['a'], ['b'], {}, { name: 'r2' })],
      inputs: [],
      outputs: [],
    });
    expect(() => new GraphIndex(graph).topologicalOrder()).toThrow(OnnxFormatError);
    expect(() => new GraphIndex(graph).topologicalOrder()).toThrow(/graph 'loop' has a cycle \(through Relu node 'r1'\)/);
  });

  it('walks forward until stop ops and lists reachable tensors', () => {
    const index = new GraphIndex(diamond());
    const walk = index.walkForward('x', ['Sigmoid', 'Add']);
    expect(names(walk.visited)).toEqual(['mm', 'relu']);
    expect(names(walk.stops)).toEqual(['sigmoid', 'add']);
    const all = index.walkForward('a', () => false);
    expect(names(all.visited)).toEqual(['relu', 'sigmoid', 'add']); // add visited once
    expect([...index.reachableTensors('a')].sort()).toEqual(['a', 'b', 'c', 'y']);
    expect([...index.reachableTensors('x', new Set(['Relu']))].sort()).toEqual(['a', 'c', 'x', 'y']);
  });
});

describe('attribute helpers', () => {
  const node = makeNode('Gemm', ['a', 'b'], ['c'], {
    transB: 1,
    alpha: makeAttribute('alpha', 0.5, AttributeType.FLOAT),
    perm: [1, 0],
    mode: 'constant',
    big: 9223372036854775807n,
    value: makeTensor('', [1], new Float32Array([3])),
  });

  it('reads attributes with defaults', () => {
    expect(intAttribute(node, 'transB', 0)).toBe(1);
    expect(intAttribute(node, 'transA', 0)).toBe(0);
    expect(intAttribute(node, 'transA')).toBeUndefined();
    expect(intAttribute(node, 'big')).toBe(9223372036854775807);
    expect(floatAttribute(node, 'alpha', 1)).toBe(0.5);
    expect(floatAttribute(node, 'beta', 1)).toBe(1);
    expect(intsAttribute(node, 'perm')).toEqual([1, 0]);
    expect(stringAttribute(node, 'mode')).toBe('constant');
    expect(tensorAttribute(node, 'value')?.dims).toEqual([1]);
  });

  it('names the node and attribute when the type is wrong', () => {
    expect(() => intAttribute(node, 'alpha')).toThrow("Gemm node '': attribute 'alpha' is not an integer");
    expect(() => floatAttribute(node, 'mode')).toThrow(/attribute 'mode' is not a float/);
    expect(() => intsAttribute(node, 'alpha')).toThrow(/is not a list of integers/);
  });
});

describeShared(
  'GraphIndex on a real export',
  () => {
    it('orders kjv-llama-tiny as exported and follows attention from q_proj to Softmax', () => {
      const { model } = loadModel(path.join(sharedPaths.modelsDir, 'kjv-llama-tiny/onnx/model.onnx'));
      const graph = model.graph as GraphProto;
      const index = new GraphIndex(graph);
      expect(index.topologicalOrder()).toEqual(graph.node);
      const q = graph.node.find((n) => n.name === '/layers.0/q_proj/MatMul') as NodeProto;
      const walk = index.walkForward(q.output[0] as string, ['Softmax']);
      expect(names(walk.stops)).toEqual(['/layers.0/Softmax']);
      expect(walk.visited.some((n) => n.opType === 'MatMul')).toBe(true); // the QK^T product
      // every Constant node output has a decodable value
      for (const node of index.nodesOfType('Constant')) expect(index.constantValue(node.output[0] as string)).toBeDefined();
    });
  },
  [sharedPaths.modelsDir],
);
