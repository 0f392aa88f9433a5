/**
 * Where the per-layer moments live between the statistics pass and their readers (the importance
 * rules, the correction): in memory while all layers fit in a byte budget, else in a temporary
 * folder, one file per layer and module, read back on access. Readers see the same
 * `readonly LayerMoments[]` either way; on disk, `layers[i].ffn` loads that matrix when read and
 * remembers only the most recently read one of each module, so a reader going through the
 * layers in order holds one layer at a time. That one is held weakly: once no reader holds it,
 * it can be freed (a 5632-wide FFN's second moment is 254 MB, and its OBS ranking no longer needs
 * it once it is inverted); reading it again then loads it again.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { LayerMoments, Moments } from './statistics';

type Module = 'ffn' | 'attention';

/** Folders to remove when the process exits (a store not released by then). */
const liveFolders = new Set<string>();
let exitHookInstalled = false;

function removeOnExit(folder: string): void {
  liveFolders.add(folder);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const f of liveFolders) fs.rmSync(f, { recursive: true, force: true });
  });
}

function writeMoments(file: string, m: Moments): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (const array of [m.second, m.mean]) {
      const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
      let done = 0;
      while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function readMoments(file: string, dim: number, count: number): Moments {
  const second = new Float64Array(dim * dim);
  const mean = new Float64Array(dim);
  const fd = fs.openSync(file, 'r');
  try {
    let offset = 0;
    for (const array of [second, mean]) {
      const bytes = new Uint8Array(array.buffer);
      let done = 0;
      while (done < bytes.byteLength) {
        const read = fs.readSync(fd, bytes, done, Math.min(bytes.byteLength - done, 2 ** 30), offset + done);
        if (read === 0) throw new Error(`calibration statistics file ${file} ended early`);
        done += read;
      }
      offset += bytes.byteLength;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { dim, count, second, mean };
}

export class MomentsStore {
  private readonly memory: (LayerMoments | undefined)[];
  private folder: string | undefined;
  private readonly shapes: ({ ffn: { dim: number; count: number }; attention: { dim: number; count: number } } | undefined)[];
  private readonly recent: Partial<Record<Module, { index: number; moments: WeakRef<Moments> }>> = {};
  /** Every layer's moments, in memory or loaded on access (see the module comment). */
  readonly layers: readonly LayerMoments[];

  /** `onDisk`: keep the moments in a temporary folder instead of memory. */
  constructor(
    readonly count: number,
    readonly onDisk: boolean,
  ) {
    this.memory = new Array(count).fill(undefined);
    this.shapes = new Array(count).fill(undefined);
    if (onDisk) {
      this.folder = fs.mkdtempSync(path.join(os.tmpdir(), 'zerolm-moments-'));
      removeOnExit(this.folder);
    }
    const layerAt = (i: number): LayerMoments => this.layer(i);
    const size = count;
    this.layers = new Proxy([] as LayerMoments[], {
      get(target, key, receiver) {
        if (key === 'length') return size;
        if (typeof key === 'string' && /^\d+$/.test(key) && Number(key) < size) return layerAt(Number(key));
        if (key === Symbol.iterator) return function* () { for (let i = 0; i < size; i++) yield layerAt(i); };
        return Reflect.get(target, key, receiver);
      },
      has(target, key) {
        if (typeof key === 'string' && /^\d+$/.test(key)) return Number(key) < size;
        return Reflect.has(target, key);
      },
    });
  }

  /** Bytes of float64 moments a layer of these widths takes. */
  static layerBytes(ffnWidth: number, attentionWidth: number): number {
    return 8 * (ffnWidth * ffnWidth + ffnWidth + attentionWidth * attentionWidth + attentionWidth);
  }

  put(moments: LayerMoments): void {
    const i = moments.index;
    if (this.folder === undefined) {
      if (this.onDisk) throw new Error('internal: the calibration statistics were released');
      this.memory[i] = moments;
      return;
    }
    writeMoments(this.file(i, 'ffn'), moments.ffn);
    writeMoments(this.file(i, 'attention'), moments.attention);
    this.shapes[i] = { ffn: { dim: moments.ffn.dim, count: moments.ffn.count }, attention: { dim: moments.attention.dim, count: moments.attention.count } };
  }

  private file(i: number, module: Module): string {
    return path.join(this.folder!, `${i}-${module}.f64`);
  }

  private load(i: number, module: Module): Moments {
    const recent = this.recent[module];
    const held = recent?.index === i ? recent.moments.deref() : undefined;
    if (held) return held;
    if (this.folder === undefined) throw new Error('internal: the calibration statistics were released');
    const shape = this.shapes[i]![module];
    const moments = readMoments(this.file(i, module), shape.dim, shape.count);
    this.recent[module] = { index: i, moments: new WeakRef(moments) };
    return moments;
  }

  private layer(i: number): LayerMoments {
    if (!this.onDisk) {
      const m = this.memory[i];
      if (!m) throw new Error(`internal: no calibration statistics for layer ${i}`);
      return m;
    }
    if (!this.shapes[i]) throw new Error(`internal: no calibration statistics for layer ${i}`);
    const load = (module: Module) => this.load(i, module);
    return {
      index: i,
      get ffn() {
        return load('ffn');
      },
      get attention() {
        return load('attention');
      },
    };
  }

  /** Deletes the temporary folder (the moments can no longer be read). */
  release(): void {
    if (this.folder === undefined) return;
    fs.rmSync(this.folder, { recursive: true, force: true });
    liveFolders.delete(this.folder);
    this.folder = undefined;
    delete this.recent.ffn;
    delete this.recent.attention;
  }
}
