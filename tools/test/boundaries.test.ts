import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { checkBoundaries, findCycle, importsOf, LAYERS, workspaceProjects } from '../src/checks/boundaries';

const repoRoot = resolve(__dirname, '../..');

function write(root: string, file: string, text: string): void {
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), text);
}

/** A two-project workspace: core (lowest layer) and onnx (one above), with the files given. */
function workspace(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'zerolm-boundaries-'));
  write(root, 'package.json', JSON.stringify({ workspaces: ['packages/core', 'packages/onnx'] }));
  write(root, 'packages/core/package.json', JSON.stringify({ name: '@zerolm/core' }));
  write(root, 'packages/onnx/package.json', JSON.stringify({ name: '@zerolm/onnx', dependencies: { '@zerolm/core': '0.1.0' } }));
  for (const [file, text] of Object.entries(files)) write(root, file, text);
  return root;
}

describe('module boundaries', () => {
  const roots: string[] = [];
  afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
  const make = (files: Record<string, string>) => {
    const root = workspace(files);
    roots.push(root);
    return root;
  };

  test('the repository keeps every dependency pointing down, and every project has a layer', () => {
    expect(checkBoundaries(repoRoot)).toEqual([]);
    const names = workspaceProjects(repoRoot).map((p) => p.name);
    expect([...names].sort()).toEqual([...LAYERS.flat()].sort());
  });

  test('a downward import that package.json declares passes', () => {
    const root = make({ 'packages/onnx/src/index.ts': "import { x } from '@zerolm/core';\nexport const y = x;\n" });
    expect(checkBoundaries(root)).toEqual([]);
  });

  test('an import from a lower package into a higher one is reported', () => {
    const root = make({ 'packages/core/src/index.ts': "import { y } from '@zerolm/onnx';\nexport const x = y;\n" });
    expect(checkBoundaries(root).map((v) => v.message)).toEqual([expect.stringMatching(/packages\/core\/src\/index\.ts imports @zerolm\/onnx, which is not in a lower layer/)]);
  });

  test('a dynamic import or require upwards is reported too', () => {
    const root = make({ 'packages/core/src/a.ts': "export const load = () => import('@zerolm/onnx');\nconst b = require('@zerolm/onnx/dist/x');\n" });
    expect(checkBoundaries(root)).toHaveLength(2);
  });

  test('an undeclared dependency and a relative import into another project are reported', () => {
    const root = make({
      'packages/onnx/package.json': JSON.stringify({ name: '@zerolm/onnx' }),
      'packages/onnx/src/index.ts': "import { x } from '@zerolm/core';\nimport { z } from '../../core/src/z';\n",
    });
    const messages = checkBoundaries(root).map((v) => v.message);
    expect(messages).toEqual([expect.stringMatching(/do not declare/), expect.stringMatching(/outside its own src/)]);
  });

  test('a project in no layer is reported', () => {
    const root = make({ 'package.json': JSON.stringify({ workspaces: ['packages/core', 'packages/onnx', 'packages/extra'] }), 'packages/extra/package.json': JSON.stringify({ name: '@zerolm/extra' }) });
    expect(checkBoundaries(root).map((v) => v.message)).toEqual([expect.stringMatching(/is in no layer/)]);
  });

  test('imports are found in every form', () => {
    expect(importsOf("import a from 'x';\nimport type { B } from \"y\";\nimport 'z';\nconst c = require('w');\nawait import('v');\nexport * from './u';")).toEqual(['x', 'y', 'z', 'w', 'v', './u']);
  });

  test('cycles are found, acyclic graphs pass', () => {
    expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', []]]))).toBeUndefined();
    expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
  });
});
