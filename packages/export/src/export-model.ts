/**
 * `exportPrunedModel`: a Hugging Face model folder (as transformers.js loads it) and a prune plan
 * in, a smaller model folder out that loads back into transformers.js `pipeline()` unchanged.
 *
 * Everything is written into a temporary sibling of the output folder and renamed into place at
 * the end, so the output folder is either absent, untouched, or complete; the input folder is
 * only read.
 */
import { countParams, prunedGraph, validatePlan, type ModuleGraph, type PrunePlan } from '@zerolm/core';
import { DTYPE_FILES, DTYPES_BY_PRECISION, loadHfModel, presentDtypes, type HfModel, type ModelDtype } from '@zerolm/adapters';
import {
  convertGraph,
  DataType,
  externalDataLocations,
  lazyGraphOf,
  modelOfLazyGraph,
  saveModel,
  standardExternalData,
  transformersJsQuantization,
  type ModelProto,
  type WeightFormat,
} from '@zerolm/onnx';
import * as fs from 'fs';
import * as path from 'path';
import { prunedConfig, type PrunedLayerEntry } from './config';
import { resolveOverrides, type WeightOverride } from './overrides';
import { keptShape, pruneOnnxModel } from './prune-onnx';
import { smokeRun } from './verify';
import { exportRefusal } from './fused';
import { transformersJsConfig, type WrittenOnnxFile } from './tjs-config';
import type { Requantized } from './block-cut';

export interface ExportOptions {
  /** Replace a non-empty output folder (only once the new one is complete). */
  force?: boolean;
  /** Extra fields for config.json's `zerolm` block (budget, plan summary, ...). */
  zerolm?: Readonly<Record<string, unknown>>;
  /**
   * Extra files to write, by path relative to the output folder (e.g. `plan.json`); a function
   * is called with what the export wrote, once the ONNX files are written.
   */
  files?: Readonly<Record<string, ExtraFile>>;
  /**
   * The weight files to write, as transformers.js dtypes (default: every one the source holds).
   * A dtype the source lacks is made from the pruned fp32 file as transformers.js's quantize.py
   * makes it (onnxruntime's quantizers, the float16 conversion), so the source needs
   * `onnx/model.onnx` for it. Files of the source left out here are listed in `skipped`.
   */
  dtypes?: readonly ModelDtype[];
  /** Run every exported file once on a few tokens (onnxruntime, CPU) before moving it into place. Default true. */
  verify?: boolean;
  /**
   * New values for the kept rows of pruned `o` / `down` multiplies and their output biases (a
   * correction such as the least-squares refit), written into every file in its stored type:
   * fp32, fp16 (converted), 8-bit (requantized with the file's scale and zero point, clamped).
   * The exported shapes are the plan's either way; these values differ from plain slicing.
   */
  overrides?: readonly WeightOverride[];
}

/** An extra file's content, or a function of what the export wrote that gives it. */
export type ExtraFile = string | Uint8Array | ((written: ExportSummary) => string | Uint8Array);

/** What an export wrote, as extra files (plan.json) may record it. */
export interface ExportSummary {
  readonly onnxFiles: readonly ExportedOnnxFile[];
  readonly skipped: readonly string[];
}

/** One ONNX file written: pruned from the source's own file, or made from the pruned fp32 file. */
export interface ExportedOnnxFile extends WrittenOnnxFile {
  readonly from: 'pruned' | 'converted from fp32';
  /** Weights re-quantized instead of sliced (block-quantized weights cut through a block, or corrected). */
  readonly requantized: readonly Requantized[];
}

/** One layer of the source model and what the export kept of it. */
export interface ExportedLayer {
  /** Index in the source model. */
  readonly index: number;
  readonly dropped: boolean;
  /** Kept query heads, key-value heads and FFN neurons (0 for a dropped layer). */
  readonly heads: number;
  readonly kvHeads: number;
  readonly ffnWidth: number;
}

export interface ExportResult {
  /** Absolute path of the written folder. */
  readonly outDir: string;
  /** Files written, relative to `outDir`, sorted. */
  readonly files: string[];
  /** The ONNX files written, with their dtype, size, external data and re-quantized weights. */
  readonly onnxFiles: ExportedOnnxFile[];
  /** Files of the source's `onnx/` folder that were not exported (left out by `dtypes`, or not model files). */
  readonly skipped: string[];
  /** Attention + FFN parameters of the module graph before and after. */
  readonly params: { readonly before: number; readonly after: number };
  readonly layers: ExportedLayer[];
}

const RESERVED_ZEROLM_KEYS = ['layers', 'headDim', 'source'];

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The real path of `p`, resolving symlinks of the part that exists. */
function realPath(p: string): string {
  const missing: string[] = [];
  let current = path.resolve(p);
  while (!fs.existsSync(current)) {
    missing.unshift(path.basename(current));
    const parent = path.dirname(current);
    if (parent === current) break;
    current = parent;
  }
  return path.join(fs.realpathSync(current), ...missing);
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

function checkPlacement(input: string, output: string, force: boolean): void {
  if (!isDirectory(input)) throw new Error(`model folder ${input} does not exist or is not a folder`);
  const realInput = realPath(input);
  const realOutput = realPath(output);
  if (isInside(realOutput, realInput)) {
    throw new Error(`the output folder ${output} is inside (or is) the input model folder ${input}; choose a folder outside it`);
  }
  if (isInside(realInput, realOutput)) {
    throw new Error(`the output folder ${output} contains the input model folder ${input}; choose another folder`);
  }
  if (fs.existsSync(output)) {
    if (!isDirectory(output)) throw new Error(`the output path ${output} exists and is not a folder`);
    if (fs.readdirSync(output).length > 0 && !force) {
      throw new Error(`the output folder ${output} is not empty (replace it with --force, or the force option)`);
    }
  }
}

/** Checks extra file paths: relative, inside the folder, and not a file the export itself writes. */
function checkExtraFiles(files: Readonly<Record<string, ExtraFile>>): void {
  for (const name of Object.keys(files)) {
    const normal = path.posix.normalize(name.split(path.sep).join('/'));
    if (name === '' || path.isAbsolute(name) || normal.startsWith('../') || normal === '..' || normal === '.') {
      throw new Error(`extra file '${name}' must be a relative path inside the output folder`);
    }
    if (normal === 'config.json' || normal === 'onnx' || normal.startsWith('onnx/')) {
      throw new Error(`extra file '${name}' would overwrite the exported ${normal === 'config.json' ? 'config.json' : 'ONNX files'}`);
    }
  }
}

/** Files under `dir`, relative, with `/` separators, sorted. */
function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory() || (entry.isSymbolicLink() && isDirectory(full))) out.push(...listFiles(full, relative));
    else out.push(relative);
  }
  return out.sort();
}

/** Per-layer shapes that must agree between the files of one folder. */
function layerShapes(graph: ModuleGraph): string {
  return JSON.stringify(graph.layers.map((l) => [l.attention.heads, l.attention.kvHeads, l.attention.headDim, l.ffn.width]));
}

function temporaryName(target: string, kind: string): string {
  const random = Math.random().toString(36).slice(2, 10);
  return path.join(path.dirname(target), `.${path.basename(target)}.zerolm-${kind}-${process.pid}-${random}`);
}

/** External data files the model references, relative to the model folder (they belong to it, not to the skipped files). */
function externalLocations(hf: HfModel): string[] {
  return externalDataLocations(hf.onnx.model).map((location) => path.posix.normalize(`onnx/${location}`));
}

/**
 * Writes the model `modelDir` pruned by `plan` to `outDir`: every ONNX file transformers.js
 * would load (`onnx/model.onnx`, `model_quantized.onnx`, `model_fp16.onnx`) pruned, config.json
 * rewritten to match, every other file of the folder outside `onnx/` copied unchanged, plus
 * `options.files`. Refuses an `outDir` inside the input (or containing it), and a non-empty
 * `outDir` unless `options.force`. Each exported file is loaded back and (unless `verify` is
 * false) run once before the folder is moved into place. On any error nothing is left behind.
 *
 * @example
 *   const result = await exportPrunedModel('models/llama', plan, 'models/llama-pruned', {
 *     zerolm: { budget: 0.5 },
 *     files: { 'plan.json': JSON.stringify(plan, null, 2) },
 *   });
 *   console.log(result.params.before, '->', result.params.after);
 */
export async function exportPrunedModel(modelDir: string, plan: PrunePlan, outDir: string, options: ExportOptions = {}): Promise<ExportResult> {
  const input = path.resolve(modelDir);
  const output = path.resolve(outDir);
  checkPlacement(input, output, options.force === true);
  if (typeof plan !== 'object' || plan === null || !Array.isArray(plan.layers)) throw new Error('the plan must be an object with a "layers" array');
  plan.layers.forEach((layer, i) => {
    if (layer?.index !== i) throw new Error(`the plan's layer at position ${i} says index ${String(layer?.index)}; layers must be listed in order`);
  });
  const extraFiles = options.files ?? {};
  checkExtraFiles(extraFiles);
  const reserved = Object.keys(options.zerolm ?? {}).filter((k) => RESERVED_ZEROLM_KEYS.includes(k));
  if (reserved.length > 0) throw new Error(`zerolm fields ${reserved.join(', ')} are written by the exporter and cannot be passed`);

  const { dtypes, fromSource, converted, skippedModels } = chooseFiles(input, options.dtypes);

  // Check the plan against every file read before writing anything.
  const read = [...fromSource, ...(converted.length > 0 && !fromSource.includes('fp32') ? (['fp32'] as const) : [])];
  let reference: HfModel | undefined;
  for (const dtype of read) {
    const file = `onnx/${DTYPE_FILES[dtype]}`;
    let hf: HfModel;
    try {
      hf = loadHfModel(input, { dtype });
    } catch (error) {
      throw new Error(`cannot export ${file} of ${input}: ${(error as Error).message}${options.dtypes ? '' : ' (leave it out with dtypes / --dtypes)'}`);
    }
    const refusal = exportRefusal(hf);
    if (refusal) throw new Error(`cannot prune ${file} of ${input}: ${refusal}`);
    try {
      validatePlan(hf.graph, plan);
    } catch (error) {
      throw new Error(`the plan does not fit ${file} of ${input}: ${(error as Error).message}`);
    }
    try {
      resolveOverrides(hf, plan, options.overrides ?? []);
    } catch (error) {
      throw new Error(`the weight overrides do not fit ${file} of ${input}: ${(error as Error).message}`);
    }
    if (!reference) reference = hf;
    else if (layerShapes(hf.graph) !== layerShapes(reference.graph)) {
      throw new Error(`${file} and onnx/${DTYPE_FILES[reference.dtype]} of ${input} have different layer shapes`);
    }
  }
  const { config: sourceConfig, dtype: sourceDtype } = reference!;
  if (plan.layers.every((l) => l.dropped)) throw new Error('the plan drops every layer; keep at least one');
  const { layers, kept, headDim, params } = prunedLayout(reference!.graph, plan, input);

  const parent = path.dirname(output);
  const createdParent = fs.mkdirSync(parent, { recursive: true });
  const temp = temporaryName(output, 'tmp');
  const skipped = new Set<string>();
  try {
    fs.mkdirSync(temp);
    // Everything but the ONNX folder and config.json, unchanged.
    const sourceFiles = listFiles(input);
    for (const file of sourceFiles) {
      if (file.startsWith('onnx/')) {
        skipped.add(file);
        continue;
      }
      if (file === 'config.json') continue;
      const target = path.join(temp, ...file.split('/'));
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(path.join(input, ...file.split('/')), target);
    }
    fs.mkdirSync(path.join(temp, 'onnx'));
    const onnxFiles: ExportedOnnxFile[] = [];
    const write = (dtype: ModelDtype, model: ModelProto, sourceDir: string, external: boolean, from: ExportedOnnxFile['from'], requantized: Requantized[]) => {
      const name = DTYPE_FILES[dtype];
      const target = path.join(temp, 'onnx', name);
      // External data as the source had it, or wherever the file would pass the 2 GiB protobuf limit.
      const saved = saveModel(model, target, { sourceDir, externalData: external ? standardExternalData(target) : 'auto' });
      const past = model.graph?.input.find((v) => v.name?.startsWith('past_key_values.'));
      const elemType = past?.type?.tensorType?.elemType;
      onnxFiles.push({
        dtype,
        file: `onnx/${name}`,
        bytes: saved.bytes,
        ...(saved.externalData ? { externalData: { file: `onnx/${saved.externalData.location}`, bytes: saved.externalData.bytes } } : {}),
        ...(elemType !== undefined ? { kvCacheType: elemType === DataType.FLOAT16 ? 'float16' : 'float32' } : {}),
        from,
        requantized,
      });
    };
    for (const dtype of read) {
      // The other files loaded afresh (pruning edits the in-memory model); the checked one let go
      // once pruned, so that a single-file model is not held through the writes and checks below.
      const hf = dtype === sourceDtype ? reference! : loadHfModel(input, { dtype });
      if (dtype === sourceDtype) reference = undefined;
      const external = externalLocations(hf);
      const requantized: Requantized[] = [];
      const model = pruneOnnxModel(hf, plan, options.overrides ?? [], requantized);
      if (fromSource.includes(dtype)) {
        skipped.delete(`onnx/${DTYPE_FILES[dtype]}`);
        external.forEach((f) => skipped.delete(f));
        write(dtype, model, hf.onnx.baseDir, external.length > 0, 'pruned', requantized);
      }
      if (dtype !== 'fp32') continue;
      // Formats the source lacks: converted from the pruned fp32 model (corrections included).
      for (const format of converted) {
        const out = convertGraph(lazyGraphOf(model, hf.onnx.baseDir), format as WeightFormat, transformersJsQuantization(hf.config.modelType));
        write(format, modelOfLazyGraph(model, out.graph, out.opsetImports), hf.onnx.baseDir, external.length > 0, 'converted from fp32', []);
      }
    }
    onnxFiles.sort((a, b) => dtypes.indexOf(a.dtype as ModelDtype) - dtypes.indexOf(b.dtype as ModelDtype));
    skippedModels.forEach((f) => skipped.add(f));

    const config = prunedConfig({
      raw: sourceConfig.raw,
      modelType: sourceConfig.modelType,
      sourceLayers: layers.length,
      layers: kept,
      headDim,
      source: input,
      ...(options.zerolm ? { extra: options.zerolm } : {}),
    });
    const tjs = transformersJsConfig(sourceConfig.raw['transformers.js_config'], onnxFiles);
    if (tjs) config['transformers.js_config'] = tjs;
    else delete config['transformers.js_config'];
    fs.writeFileSync(path.join(temp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);

    const summary: ExportSummary = { onnxFiles, skipped: [...skipped].sort() };
    for (const [name, content] of Object.entries(extraFiles)) {
      const target = path.join(temp, ...path.posix.normalize(name.split(path.sep).join('/')).split('/'));
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, typeof content === 'function' ? content(summary) : content);
    }

    // The written folder must map back to the shapes the plan asked for.
    const expected = JSON.stringify(kept.map((l) => [l.heads, l.kvHeads, headDim, l.ffnWidth]));
    for (const dtype of dtypes) {
      const written = loadHfModel(temp, { dtype });
      if (layerShapes(written.graph) !== expected) {
        throw new Error(`internal: the exported onnx/${DTYPE_FILES[dtype]} maps to layers ${layerShapes(written.graph)}, expected ${expected}`);
      }
    }

    if (options.verify !== false) {
      const vocab = sourceConfig.raw['vocab_size'];
      const widths = { hidden: sourceConfig.hiddenSize, ...(typeof vocab === 'number' ? { logits: vocab } : {}) };
      for (const dtype of dtypes) await smokeRun(path.join(temp, 'onnx', DTYPE_FILES[dtype]), `onnx/${DTYPE_FILES[dtype]}`, widths);
    }

    const files = listFiles(temp);
    moveIntoPlace(temp, output);
    return { outDir: output, files, onnxFiles, skipped: summary.skipped as string[], params, layers };
  } catch (error) {
    fs.rmSync(temp, { recursive: true, force: true });
    if (createdParent) fs.rmSync(createdParent, { recursive: true, force: true });
    throw error;
  }
}

/** The layers an export keeps, their shapes and the parameter counts, from the source graph. */
function prunedLayout(graph: ModuleGraph, plan: PrunePlan, input: string): { layers: ExportedLayer[]; kept: PrunedLayerEntry[]; headDim: number; params: ExportResult['params'] } {
  const layers: ExportedLayer[] = graph.layers.map((layer, i) => {
    const shape = keptShape(layer, plan.layers[i]!);
    return { index: i, dropped: !shape, heads: shape?.heads ?? 0, kvHeads: shape?.kvHeads ?? 0, ffnWidth: shape?.ffnWidth ?? 0 };
  });
  const kept: PrunedLayerEntry[] = layers
    .filter((l) => !l.dropped)
    .map((l) => ({ heads: l.heads, kvHeads: l.kvHeads, ffnWidth: l.ffnWidth, sourceLayer: l.index }));
  const headDims = new Set(graph.layers.map((l) => l.attention.headDim));
  if (headDims.size !== 1) throw new Error(`${input}: layers have different head sizes (${[...headDims].join(', ')}), which config.json cannot state`);
  const headDim = [...headDims][0]!;
  const params = { before: countParams(graph).modules, after: countParams(prunedGraph(graph, plan)).modules };
  return { layers, kept, headDim, params };
}

/**
 * Which weight files an export writes (`dtypes`, most precise first), which of them come from
 * the source's own files and which are converted from its pruned fp32 file, and the source's
 * ONNX files left out. Without `requested`, every file the source holds; then a model file the
 * exporter does not know is an error (nothing is dropped silently).
 */
function chooseFiles(input: string, requested: readonly ModelDtype[] | undefined): { dtypes: ModelDtype[]; fromSource: ModelDtype[]; converted: ModelDtype[]; skippedModels: string[] } {
  const onnxDir = path.join(input, 'onnx');
  const present = presentDtypes(input);
  const known = new Set<string>(Object.values(DTYPE_FILES));
  const others = isDirectory(onnxDir) ? fs.readdirSync(onnxDir).filter((f) => f.endsWith('.onnx') && !known.has(f)) : [];
  if (!requested) {
    if (present.length === 0) throw new Error(`no ONNX model in ${onnxDir} (expected ${Object.values(DTYPE_FILES).join(', ')})`);
    if (others.length > 0) {
      throw new Error(
        `onnx/${others[0]} of ${input} is not a weight file the exporter writes (it writes ${Object.values(DTYPE_FILES).join(', ')}); choose the files to write with dtypes / --dtypes`,
      );
    }
  }
  const unknown = (requested ?? []).filter((d) => !DTYPES_BY_PRECISION.includes(d));
  if (unknown.length > 0) throw new Error(`unknown dtype "${unknown[0]}" (known: ${DTYPES_BY_PRECISION.join(', ')})`);
  const dtypes = requested ? DTYPES_BY_PRECISION.filter((d) => requested.includes(d)) : present;
  if (dtypes.length === 0) throw new Error('name at least one dtype to write');
  const fromSource = dtypes.filter((d) => present.includes(d));
  const converted = dtypes.filter((d) => !present.includes(d));
  if (converted.length > 0 && !present.includes('fp32')) {
    throw new Error(
      `${input} has no onnx/${DTYPE_FILES[converted[0]!]} (${converted[0]}), and a format the source lacks is made from its fp32 file onnx/model.onnx, which it lacks too (it holds ${present.join(', ') || 'no model file'})`,
    );
  }
  const skippedModels = [...present.filter((d) => !dtypes.includes(d)).map((d) => `onnx/${DTYPE_FILES[d]}`), ...others.map((f) => `onnx/${f}`)];
  return { dtypes, fromSource, converted, skippedModels };
}

/** Renames the finished `temp` folder to `output`, replacing what is there only after the rename is possible. */
function moveIntoPlace(temp: string, output: string): void {
  if (!fs.existsSync(output)) {
    fs.renameSync(temp, output);
    return;
  }
  if (fs.readdirSync(output).length === 0) {
    fs.rmdirSync(output);
    fs.renameSync(temp, output);
    return;
  }
  const old = temporaryName(output, 'old');
  fs.renameSync(output, old);
  try {
    fs.renameSync(temp, output);
  } catch (error) {
    fs.renameSync(old, output);
    throw error;
  }
  fs.rmSync(old, { recursive: true, force: true });
}
