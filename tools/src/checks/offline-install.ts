/**
 * Installs the workspace's packages into a fresh project outside the workspace, as a user would
 * install them from tarballs, with no network: `npm pack` of each publishable package, then
 * `npm ci --offline` against a lockfile that names the tarballs and, for every third-party
 * package they need, the exact version, tarball and integrity the workspace's own lockfile holds
 * (so the npm cache that installed the workspace has every file).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  dev?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  optional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [key: string]: unknown;
}

interface Lockfile {
  packages: Record<string, LockEntry>;
}

/** The environment for npm child processes: this process's, without the npm_* variables a parent npm run sets. */
export function npmEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) || /^npm_config_cache$/i.test(key)) env[key] = value;
  }
  return { ...env, ONNXRUNTIME_NODE_INSTALL: 'skip', ...extra };
}

/** Runs a command, throwing with its output when it fails. */
export function run(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = npmEnvironment()): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} (in ${cwd}) exited with ${result.status ?? result.signal}:\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

/** `npm pack` of each workspace into `destination`; returns the tarball file names by package name. */
export function packWorkspaces(root: string, workspaces: readonly string[], destination: string): Map<string, string> {
  mkdirSync(destination, { recursive: true });
  const args = ['pack', '--json', '--pack-destination', destination, ...workspaces.flatMap((w) => ['--workspace', w])];
  const packed = JSON.parse(run('npm', args, root).stdout) as { name: string; filename: string }[];
  return new Map(packed.map((p) => [p.name, p.filename]));
}

function sri(file: string): string {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/** The lock path node would resolve `name` to from the package at `from` (walking up node_modules). */
function resolveInLock(packages: Record<string, LockEntry>, from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = `${dir ? `${dir}/` : ''}node_modules/${name}`;
    if (packages[candidate] && !packages[candidate]!.link) return candidate;
    if (!dir) return undefined;
    const up = dir.lastIndexOf('/node_modules/');
    dir = up < 0 ? '' : dir.slice(0, up);
  }
}

/**
 * Writes `package.json` and `package-lock.json` of a project in `projectDir` that depends on the
 * packed tarballs (and on `extraDependencies`, third-party packages the workspace lock holds).
 */
export function writeOfflineProject(root: string, tarballDir: string, tarballs: ReadonlyMap<string, string>, projectDir: string, extraDependencies: readonly string[] = []): void {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lockfile;
  const packages: Record<string, LockEntry> = {};
  const direct: Record<string, string> = {};
  const queue: [string, Record<string, string>][] = [];
  const workspaceEntry = (name: string) => Object.values(lock.packages).find((e) => e['name'] === name && !e.link);
  for (const [name, file] of tarballs) {
    const workspace = workspaceEntry(name);
    if (!workspace) throw new Error(`${name} is not a workspace of ${root}`);
    const spec = `file:${relative(projectDir, join(tarballDir, file))}`;
    direct[name] = spec;
    const entry: LockEntry = { version: workspace.version, resolved: spec, integrity: sri(join(tarballDir, file)) };
    for (const key of ['license', 'dependencies', 'bin', 'engines']) if (workspace[key] !== undefined) entry[key] = workspace[key];
    packages[`node_modules/${name}`] = entry;
    queue.push([`node_modules/${name}`, workspace.dependencies ?? {}]);
  }
  for (const name of extraDependencies) {
    const entry = lock.packages[`node_modules/${name}`];
    if (!entry?.version) throw new Error(`${name} is not in ${join(root, 'package-lock.json')}`);
    direct[name] = entry.version;
    queue.push(['', { [name]: entry.version }]);
  }
  while (queue.length > 0) {
    const [from, dependencies] = queue.shift()!;
    for (const name of Object.keys(dependencies)) {
      if (tarballs.has(name)) continue;
      const at = resolveInLock(lock.packages, from, name);
      if (!at) {
        if (lock.packages[from]?.optionalDependencies?.[name] !== undefined) continue;
        throw new Error(`${name} (needed by ${from || 'the project'}) is not in ${join(root, 'package-lock.json')}`);
      }
      if (packages[at]) continue;
      const { dev: _dev, devOptional: _devOptional, peer: _peer, ...entry } = lock.packages[at]!;
      packages[at] = entry;
      queue.push([at, { ...entry.dependencies, ...entry.optionalDependencies }]);
    }
  }
  const manifest = { name: 'zerolm-install-check', version: '1.0.0', private: true, dependencies: direct };
  writeFileSync(join(projectDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const lockfile = { name: manifest.name, version: manifest.version, lockfileVersion: 3, requires: true, packages: { '': { name: manifest.name, version: manifest.version, dependencies: direct }, ...packages } };
  writeFileSync(join(projectDir, 'package-lock.json'), `${JSON.stringify(lockfile, null, 2)}\n`);
}

/** Packs `workspaces`, writes the project and installs it offline (`npm ci --offline`). */
export function installOffline(root: string, workspaces: readonly string[], projectDir: string, extraDependencies: readonly string[] = []): Map<string, string> {
  const tarballDir = join(projectDir, 'tarballs');
  const tarballs = packWorkspaces(root, workspaces, tarballDir);
  writeOfflineProject(root, tarballDir, tarballs, projectDir, extraDependencies);
  run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], projectDir);
  return tarballs;
}

