/**
 * `config.json`'s `transformers.js_config` block kept true to the files an export writes:
 * transformers.js 4.3.1 reads `use_external_data_format` (a boolean, a chunk count, or a record
 * keyed by file name `model_q4.onnx` or stem `model`) to fetch `<file>_data`, `_data_1`, ...
 * next to each model file (`utils/model-loader.js resolveExternalDataFormat`), and older
 * releases read `kv_cache_dtype` (a string, or a record keyed by dtype) to allocate the empty
 * cache. Whatever the source said about files, the export states what it wrote.
 */

/** One ONNX file an export wrote. */
export interface WrittenOnnxFile {
  /** transformers.js dtype (`fp32`, `q4f16`, ...). */
  readonly dtype: string;
  /** Path relative to the model folder (`onnx/model_q4.onnx`). */
  readonly file: string;
  readonly bytes: number;
  /** Its external data file (relative to the model folder) and size, when it has one. */
  readonly externalData?: { readonly file: string; readonly bytes: number };
  /** Element type of its `past_key_values.*` inputs (`float32`, `float16`), for decoders. */
  readonly kvCacheType?: string;
}

function basename(file: string): string {
  return file.slice(file.lastIndexOf('/') + 1);
}

/**
 * The `transformers.js_config` block for a model folder holding `files` (most precise first), from the source's
 * block `source` (other keys kept): `use_external_data_format` lists exactly the written files
 * with external data (one chunk each); `kv_cache_dtype`, when the source had one or a written
 * file's cache is not float32, maps each written dtype to its cache type. `undefined` when
 * nothing is left to say.
 */
export function transformersJsConfig(source: unknown, files: readonly WrittenOnnxFile[]): Record<string, unknown> | undefined {
  const block: Record<string, unknown> = typeof source === 'object' && source !== null && !Array.isArray(source) ? { ...(source as Record<string, unknown>) } : {};
  const external = files.filter((f) => f.externalData);
  if (external.length > 0) block['use_external_data_format'] = Object.fromEntries(external.map((f) => [basename(f.file), 1]));
  else delete block['use_external_data_format'];
  const written = files.map((f) => f.dtype);
  const fixDtype = (value: unknown): unknown => {
    if (typeof value === 'string') return value === 'auto' || written.includes(value) ? value : written[0];
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, fixDtype(v)]));
    }
    return value;
  };
  if ('dtype' in block) block['dtype'] = fixDtype(block['dtype']);
  const devices = block['device_config'];
  if (typeof devices === 'object' && devices !== null && !Array.isArray(devices)) {
    block['device_config'] = Object.fromEntries(
      Object.entries(devices as Record<string, unknown>).map(([device, settings]) =>
        typeof settings === 'object' && settings !== null && 'dtype' in settings ? [device, { ...(settings as object), dtype: fixDtype((settings as { dtype: unknown }).dtype) }] : [device, settings],
      ),
    );
  }
  const caches = files.filter((f) => f.kvCacheType);
  if (caches.length > 0 && ('kv_cache_dtype' in block || caches.some((f) => f.kvCacheType !== 'float32'))) {
    block['kv_cache_dtype'] = Object.fromEntries(caches.map((f) => [f.dtype, f.kvCacheType]));
  }
  return Object.keys(block).length > 0 ? block : undefined;
}
