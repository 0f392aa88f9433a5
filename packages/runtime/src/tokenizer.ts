/**
 * Tokenizers of the compared folders: fidelity is only meaningful when every model reads the same
 * token ids, so the tokenizer files must agree, and the text is tokenized once, by the reference's
 * tokenizer, through transformers.js.
 */
import { existsSync, readFileSync } from 'fs';
import * as path from 'path';

/** Files transformers.js builds a tokenizer from; both must be present. */
export const REQUIRED_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

/** Other tokenizer files a folder may carry; when either side has one, both must hold the same. */
export const OPTIONAL_TOKENIZER_FILES = ['special_tokens_map.json', 'added_tokens.json', 'vocab.txt', 'vocab.json', 'merges.txt'] as const;

export function checkTokenizerFiles(dir: string): void {
  for (const name of REQUIRED_TOKENIZER_FILES) {
    if (!existsSync(path.join(dir, name))) throw new Error(`no ${name} in ${dir}: the folder has no transformers.js tokenizer`);
  }
}

/** JSON with object keys sorted, so that files differing only in layout compare equal. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What a tokenizer file means: parsed JSON (layout ignored), or the text itself. */
function tokenizerFileContent(file: string): string {
  const text = readFileSync(file, 'utf8');
  if (!file.endsWith('.json')) return text;
  try {
    return canonicalJson(JSON.parse(text));
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Throws unless `variantDir` holds the same tokenizer as `referenceDir`. */
export function assertSameTokenizer(referenceDir: string, variantDir: string): void {
  for (const name of [...REQUIRED_TOKENIZER_FILES, ...OPTIONAL_TOKENIZER_FILES]) {
    const referenceFile = path.join(referenceDir, name);
    const variantFile = path.join(variantDir, name);
    const inReference = existsSync(referenceFile);
    const inVariant = existsSync(variantFile);
    if (!inReference && !inVariant) continue;
    if (inReference !== inVariant) {
      throw new Error(
        `tokenizers differ: ${name} is in ${inReference ? referenceDir : variantDir} but not in ${inReference ? variantDir : referenceDir} (compare needs one tokenizer for all models)`,
      );
    }
    if (tokenizerFileContent(referenceFile) !== tokenizerFileContent(variantFile)) {
      throw new Error(`tokenizers differ: ${variantFile} is not the same as ${referenceFile} (compare needs one tokenizer for all models)`);
    }
  }
}

/** Encodes one text to token ids, special tokens included unless `specialTokens` is false. */
export type Encode = (text: string, specialTokens?: boolean) => number[];

export interface LoadedTokenizer {
  readonly encode: Encode;
  /** The id padding uses (0 when the tokenizer names none). */
  readonly padTokenId: number;
  /** The id of the mask token (`[MASK]`, `<mask>`), when the tokenizer has one. */
  readonly maskTokenId?: number;
  /** Every special token id the tokenizer knows. */
  readonly specialTokenIds: readonly number[];
}

/**
 * The folder's tokenizer through transformers.js. An absolute path is not a valid Hub model id,
 * so transformers.js 4.3.1 reads the files from that folder; `local_files_only` keeps it off the
 * network without touching its global `env`.
 */
export async function loadTokenizer(dir: string): Promise<LoadedTokenizer> {
  checkTokenizerFiles(dir);
  const { AutoTokenizer } = await import('@huggingface/transformers');
  let tokenizer: Awaited<ReturnType<typeof AutoTokenizer.from_pretrained>>;
  try {
    tokenizer = await AutoTokenizer.from_pretrained(path.resolve(dir), { local_files_only: true });
  } catch (error) {
    throw new Error(`cannot load the tokenizer of ${dir}: ${(error as Error).message.split('\n')[0]}`);
  }
  const ids = tokenizer as unknown as { pad_token_id?: number; mask_token_id?: number; all_special_ids?: number[] };
  const id = (value: unknown): number | undefined => (typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined);
  const maskTokenId = id(ids.mask_token_id);
  return {
    encode: (text, specialTokens = true) => tokenizer.encode(text, { add_special_tokens: specialTokens }) as number[],
    padTokenId: id(ids.pad_token_id) ?? 0,
    ...(maskTokenId === undefined ? {} : { maskTokenId }),
    specialTokenIds: (ids.all_special_ids ?? []).filter((v) => id(v) !== undefined),
  };
}

/** The special tokens a tokenizer puts around one text (`[CLS]` / `[SEP]` for BERT, none for GPT-2). */
export interface SpecialFrame {
  readonly prefix: readonly number[];
  readonly suffix: readonly number[];
}

/** Where `inner` starts inside `outer`, or -1. */
function indexOfRun(outer: readonly number[], inner: readonly number[]): number {
  for (let start = 0; start + inner.length <= outer.length; start++) {
    if (inner.every((v, i) => outer[start + i] === v)) return start;
  }
  return -1;
}

/** The tokenizer's frame, found by encoding one word with and without its special tokens. */
export function specialFrame(tokenizer: LoadedTokenizer, dir: string, probe = 'a'): SpecialFrame {
  const framed = tokenizer.encode(probe);
  const plain = tokenizer.encode(probe, false);
  const at = plain.length === 0 ? -1 : indexOfRun(framed, plain);
  if (at < 0) throw new Error(`the tokenizer of ${dir} encodes "${probe}" as [${plain.join(', ')}] alone but as [${framed.join(', ')}] with its special tokens: cannot tell its frame`);
  return { prefix: framed.slice(0, at), suffix: framed.slice(at + plain.length) };
}
