/**
 * Architecture-spec adapters: benchmark entries and small JSON specs to the module graph, with
 * weights drawn (lazily, reproducibly) the way each benchmark's code initialised its models.
 */
export {
  FLEXIBERT_METRIC_CONFIG,
  flexibertToGraph,
  looksLikeFlexibertEntry,
  parseFlexibertEntry,
  type FlexibertEncoderLayer,
  type FlexibertEntry,
  type FlexibertGraphOptions,
  type FlexibertOperationType,
} from './flexibert';
export {
  cleanLtsCutoffs,
  looksLikeLtsEntry,
  ltsOtherParams,
  ltsToGraph,
  parseLtsEntry,
  type LtsEntry,
  type LtsGraphOptions,
  type LtsModelConfig,
  type LtsOtherParams,
} from './lts';
export {
  looksLikeZerolmSpec,
  parseZerolmSpec,
  ZEROLM_SPEC_FORMAT,
  zerolmSpecToGraph,
  type ZerolmSpec,
  type ZerolmSpecGraphOptions,
  type ZerolmSpecLayer,
} from './zerolm-spec';
export { detectSpecFormat, specToGraph, type SpecFormat, type SpecGraphOptions } from './detect';
export {
  loadFlexibertBaselines,
  loadFlexibertBenchmark,
  loadLtsBenchmark,
  readJsonFile,
  type BenchmarkRecord,
  type FlexibertBaselines,
  type FlexibertRecord,
  type LtsRecord,
} from './loaders';
export { parseWeightInit, type SpecMatrixSource } from './weights';
export {
  BENCHMARKS,
  loadBaselineCsv,
  loadBenchmark,
  type BenchmarkArchitecture,
  type BenchmarkInfo,
  type BenchmarkName,
  type LoadBenchmarkOptions,
  type LoadedBenchmark,
} from './benchmarks';
