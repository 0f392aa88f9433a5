/**
 * The house rule, checked: dependencies between the workspace's projects point one way, from a
 * higher layer to a strictly lower one. Reads each project's `package.json` (what it declares) and
 * the imports of its `src/` files (what it uses), and Nx's project graph for cycles. Run by
 * `npm run build`, so an import from a lower package into a higher one fails the build.
 *
 *     node tools/dist/checks/boundaries.js [--root DIR]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

/** Layers from the bottom up; a project may depend only on projects of lower layers. */
export const LAYERS: readonly (readonly string[])[] = [
  ['@zerolm/core'],
  ['@zerolm/onnx'],
  ['@zerolm/adapters', '@zerolm/test-fixtures'],
  ['@zerolm/runtime'],
  ['@zerolm/export', '@zerolm/compare'],
  ['@zerolm/planner'],
  ['@zerolm/cli'],
  ['@zerolm/tools'],
];

const SCOPE = '@zerolm/';

export interface Project {
  readonly name: string;
  /** Folder, relative to the workspace root. */
  readonly dir: string;
  /** `dependencies` and `devDependencies` of its package.json. */
  readonly declared: ReadonlySet<string>;
  /** Runtime `dependencies` only (what an installed package brings). */
  readonly runtime: ReadonlySet<string>;
}

export interface Violation {
  readonly project: string;
  readonly message: string;
}

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** The workspace's projects, from the root package.json's `workspaces`. */
export function workspaceProjects(root: string): Project[] {
  const workspaces = readJson(join(root, 'package.json'))['workspaces'];
  if (!Array.isArray(workspaces)) throw new Error(`${join(root, 'package.json')} has no "workspaces" list`);
  return workspaces.map((dir: string) => {
    const manifest = readJson(join(root, dir, 'package.json'));
    const names = (field: string) => Object.keys((manifest[field] as Record<string, string> | undefined) ?? {}).filter((n) => n.startsWith(SCOPE));
    return {
      name: String(manifest['name']),
      dir,
      declared: new Set([...names('dependencies'), ...names('devDependencies')]),
      runtime: new Set(names('dependencies')),
    };
  });
}

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((entry) => {
    const file = join(dir, entry);
    if (statSync(file).isDirectory()) return sourceFiles(file);
    return /\.(ts|cts|mts|js|cjs)$/.test(entry) && !entry.endsWith('.d.ts') ? [file] : [];
  });
}

const IMPORT = /(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+)['"]([^'"]+)['"]/g;

/** Module specifiers a source file imports (static, dynamic and require). */
export function importsOf(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => m[1]!);
}

function layerOf(name: string): number {
  return LAYERS.findIndex((layer) => layer.includes(name));
}

/** Every way the workspace breaks the layering, in words. */
export function checkBoundaries(root: string, projects: readonly Project[] = workspaceProjects(root)): Violation[] {
  const violations: Violation[] = [];
  const known = new Set(projects.map((p) => p.name));
  for (const project of projects) {
    const own = layerOf(project.name);
    if (own < 0) {
      violations.push({ project: project.name, message: `is in no layer: add it to LAYERS in tools/src/checks/boundaries.ts` });
      continue;
    }
    for (const dependency of project.runtime) {
      const layer = layerOf(dependency);
      if (known.has(dependency) && layer >= own) {
        violations.push({ project: project.name, message: `package.json depends on ${dependency}, which is not in a lower layer` });
      }
    }
    const srcDir = join(root, project.dir, 'src');
    for (const file of sourceFiles(srcDir)) {
      const shown = relative(root, file);
      for (const specifier of importsOf(readFileSync(file, 'utf8'))) {
        if (specifier.startsWith('.')) {
          const target = resolve(file, '..', specifier);
          if (relative(srcDir, target).startsWith('..')) {
            violations.push({ project: project.name, message: `${shown} imports ${specifier}, outside its own src/ (import the package by name)` });
          }
          continue;
        }
        if (!specifier.startsWith(SCOPE)) continue;
        const target = specifier.split('/').slice(0, 2).join('/');
        if (target === project.name) continue;
        if (!known.has(target)) {
          violations.push({ project: project.name, message: `${shown} imports ${target}, which is not a workspace project` });
        } else if (layerOf(target) >= own) {
          violations.push({ project: project.name, message: `${shown} imports ${target}, which is not in a lower layer than ${project.name}` });
        } else if (!project.runtime.has(target)) {
          violations.push({ project: project.name, message: `${shown} imports ${target}, which its package.json "dependencies" do not declare` });
        }
      }
    }
  }
  return violations;
}

/** A cycle in a dependency graph (as a path that returns to its start), or undefined. */
export function findCycle(edges: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'open');
    path.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of edges.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Nx's project graph (dependencies it infers from package.json files and imports). */
export function nxProjectGraph(root: string): Map<string, string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'zerolm-nx-graph-'));
  try {
    const file = join(dir, 'graph.json');
    const manifest = require.resolve('nx/package.json', { paths: [root] });
    const nx = join(manifest, '..', String((readJson(manifest)['bin'] as Record<string, string>)['nx']));
    const result = spawnSync(process.execPath, [nx, 'graph', `--file=${file}`], { cwd: root, encoding: 'utf8', env: { ...process.env, NX_DAEMON: 'false' } });
    if (result.status !== 0) throw new Error(`nx graph failed: ${(result.stderr || result.stdout).trim().split('\n').pop()}`);
    const graph = (readJson(file)['graph'] as { dependencies: Record<string, { target: string }[]> }).dependencies;
    return new Map(Object.entries(graph).map(([source, targets]) => [source, targets.map((t) => t.target)]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(argv: string[]): number {
  const flag = argv.indexOf('--root');
  const root = resolve(flag >= 0 ? argv[flag + 1]! : join(__dirname, '../../..'));
  const violations = checkBoundaries(root);
  const cycle = findCycle(nxProjectGraph(root));
  for (const v of violations) process.stderr.write(`boundaries: ${v.project} ${v.message}\n`);
  if (cycle) process.stderr.write(`boundaries: Nx's project graph has a cycle: ${cycle.join(' -> ')}\n`);
  if (violations.length > 0 || cycle) return 1;
  process.stdout.write(`boundaries: ${LAYERS.flat().length} projects in ${LAYERS.length} layers, every dependency points down, no cycle in Nx's project graph\n`);
  return 0;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
