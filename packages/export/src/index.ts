/** The exporter: a pruned Hugging Face model folder that transformers.js loads unchanged. */
export { exportPrunedModel, type ExportOptions, type ExportResult, type ExportedLayer, type ExportedOnnxFile, type ExportSummary, type ExtraFile } from './export-model';
export { cutBlockQuantized, type Requantized } from './block-cut';
export { pruneOnnxModel, keptShape, type KeptShape } from './prune-onnx';
export { prunedConfig, type PrunedConfigInput, type PrunedLayerEntry } from './config';
export { overriddenBias, overriddenWeight, resolveOverrides, type ResolvedOverride, type StoredQuantization, type WeightOverride } from './overrides';
export { exportRefusal } from './fused';
export { transformersJsConfig, type WrittenOnnxFile } from './tjs-config';
