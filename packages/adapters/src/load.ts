import type { ModuleGraph } from '@zerolm/core';
import { existsSync, statSync } from 'fs';
import type { DtypeChoice, ModelDtype } from './hf/config';
import { loadHfModel } from './hf/model';
import { readJsonFile } from './specs/loaders';
import { specToGraph } from './specs/detect';

export interface LoadGraphOptions {
  /** Model folders: which ONNX file to read (default fp32; `auto`: the most precise present). */
  dtype?: DtypeChoice;
}

/**
 * The module graph of whatever the user points at: a transformers.js model folder (config.json +
 * onnx/model*.onnx) or an architecture spec JSON file (FlexiBERT entry, LTS entry, zerolm-spec).
 */
export function loadGraph(input: string, options: LoadGraphOptions = {}): ModuleGraph & { dtype?: ModelDtype } {
  if (!existsSync(input)) throw new Error(`${input} does not exist`);
  if (statSync(input).isDirectory()) return loadHfModel(input, options).graph;
  if (options.dtype) throw new Error(`--dtype applies to model folders; ${input} is a spec file`);
  return specToGraph(readJsonFile(input, 'architecture spec'));
}
