/**
 * Loaders for the benchmark files (FlexiBERT / NAS-Bench-BERT, LTS GPT-2 on WikiText-103).
 * Every error names the file and what is wrong with it.
 */
import { readFileSync } from 'fs';
import { parseFlexibertEntry, type FlexibertEntry } from './flexibert';
import { parseLtsEntry, type LtsEntry } from './lts';
import { describeValue, expectArray, isObject } from './validate';

/** One architecture of a benchmark with its trained result. */
export interface BenchmarkRecord<Entry> {
  /** The architecture's id in its benchmark, as a string. */
  readonly id: string;
  /** The trained result the proxy should predict. */
  readonly groundTruth: number;
  /** Whether a higher `groundTruth` is better (GLUE: yes; perplexity: no). */
  readonly higherIsBetter: boolean;
  /** The validated entry; pass it to `flexibertToGraph` / `ltsToGraph`. */
  readonly entry: Entry;
}

export interface FlexibertRecord extends BenchmarkRecord<FlexibertEntry> {
  /** Average GLUE score (`scores.glue`), equal to `groundTruth`. */
  readonly glue: number;
  /** All task scores of the entry, `glue` included. */
  readonly scores: Readonly<Record<string, number>>;
}

export interface LtsRecord extends BenchmarkRecord<LtsEntry> {
  /** WikiText-103 validation perplexity (lower is better), equal to `groundTruth`. */
  readonly validPpl: number;
  readonly testPpl?: number;
  /** The authors' parameter counts (`Attn`, `FFN`, `AdaEmb`, `nonembedding`, `total`). */
  readonly params?: Readonly<Record<string, number>>;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${what} "${path}": ${(error as Error).message}`);
  }
}

/** Reads and parses a JSON file, with errors that name the file. */
export function readJsonFile(path: string, what = 'JSON file'): unknown {
  const text = readText(path, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`${what} "${path}" is not valid JSON: ${(error as Error).message}`);
  }
}

function rejectDuplicate(seen: Set<string>, id: string, where: string): void {
  if (seen.has(id)) throw new Error(`${where}: duplicate architecture id ${id}`);
  seen.add(id);
}

/**
 * Loads a FlexiBERT benchmark file (`BERT_benchmark.json` format: an array of entries with
 * `id`, `scores.glue` and `hparams.model_hparam_overrides`). Ground truth: average GLUE.
 */
export function loadFlexibertBenchmark(path: string): FlexibertRecord[] {
  const what = 'FlexiBERT benchmark file';
  const list = expectArrayIn(readJsonFile(path, what), `${what} "${path}"`);
  const seen = new Set<string>();
  return list.map((raw, i) => {
    const where = `${what} "${path}", entry ${i}`;
    const entry = parseFlexibertEntry(raw, where);
    const id = String(entry.id);
    rejectDuplicate(seen, id, `${what} "${path}"`);
    const glue = entry.scores?.['glue'];
    if (glue === undefined) throw new Error(`${where} (id ${id}): scores.glue is missing`);
    return { id, groundTruth: glue, higherIsBetter: true, glue, scores: entry.scores ?? {}, entry };
  });
}

/**
 * Loads an LTS GPT-2 benchmark file (an array of `{id, model_config, valid_ppl, test_ppl,
 * params}`). Ground truth: validation perplexity, where LOWER is better.
 */
export function loadLtsBenchmark(path: string): LtsRecord[] {
  const what = 'LTS benchmark file';
  const list = expectArrayIn(readJsonFile(path, what), `${what} "${path}"`);
  const seen = new Set<string>();
  return list.map((raw, i) => {
    const where = `${what} "${path}", entry ${i}`;
    if (!isObject(raw) || !isObject(raw['model_config'])) {
      throw new Error(`${where}: expected an object {id, model_config, valid_ppl, ...} (got ${describeValue(raw)})`);
    }
    const entry = parseLtsEntry(raw, where);
    rejectDuplicate(seen, entry.id, `${what} "${path}"`);
    if (entry.valid_ppl === undefined) throw new Error(`${where} (id ${entry.id}): valid_ppl is missing`);
    return {
      id: entry.id,
      groundTruth: entry.valid_ppl,
      higherIsBetter: false,
      validPpl: entry.valid_ppl,
      ...(entry.test_ppl === undefined ? {} : { testPpl: entry.test_ppl }),
      ...(entry.params === undefined ? {} : { params: entry.params }),
      entry,
    };
  });
}

function expectArrayIn(json: unknown, where: string): unknown[] {
  const list = expectArray(json, `${where}: the top level`);
  if (list.length === 0) throw new Error(`${where} lists no architectures`);
  return list;
}

/** Numeric columns of a baseline-proxy table, per architecture id. */
export interface FlexibertBaselines {
  /** Column names in file order, `ID` excluded. */
  readonly columns: readonly string[];
  /** Row values by architecture id (the `ID` column as a string). */
  readonly byId: ReadonlyMap<string, Readonly<Record<string, number>>>;
}

/**
 * Loads the FlexiBERT baseline-proxy CSV (`ID`, `GLUE Score`, `Number of Parameters`, the
 * published proxies, ...). Every column but `ID` must be numeric; `nan` is read as NaN, as the
 * Python code that wrote such tables prints it.
 */
export function loadFlexibertBaselines(csvPath: string): FlexibertBaselines {
  const what = 'FlexiBERT baseline CSV';
  const rows = parseCsv(readText(csvPath, what), `${what} "${csvPath}"`);
  const header = rows[0];
  if (header === undefined || rows.length < 2) throw new Error(`${what} "${csvPath}" has no data rows`);
  const idColumn = header.indexOf('ID');
  if (idColumn < 0) throw new Error(`${what} "${csvPath}" has no "ID" column (columns: ${header.join(', ')})`);
  const columns = header.filter((_, j) => j !== idColumn);
  const byId = new Map<string, Record<string, number>>();
  for (let i = 1; i < rows.length; i++) {
    const row = rows[i]!;
    const where = `${what} "${csvPath}", data row ${i}`;
    if (row.length !== header.length) throw new Error(`${where} has ${row.length} fields, the header ${header.length}`);
    const id = row[idColumn]!.trim();
    if (id === '') throw new Error(`${where}: empty ID`);
    if (byId.has(id)) throw new Error(`${where}: duplicate ID ${id}`);
    const values: Record<string, number> = {};
    header.forEach((column, j) => {
      if (j === idColumn) return;
      values[column] = parseCsvNumber(row[j]!, `${where} (ID ${id}), column "${column}"`);
    });
    byId.set(id, values);
  }
  return { columns, byId };
}

function parseCsvNumber(text: string, where: string): number {
  const trimmed = text.trim();
  if (/^[-+]?nan$/i.test(trimmed)) return Number.NaN;
  if (/^\+?inf(inity)?$/i.test(trimmed)) return Infinity;
  if (/^-inf(inity)?$/i.test(trimmed)) return -Infinity;
  const value = trimmed === '' ? Number.NaN : Number(trimmed);
  if (!Number.isFinite(value)) throw new Error(`${where}: not a number (${describeValue(text)})`);
  return value;
}

/** RFC 4180 CSV: comma-separated, fields optionally in double quotes ("" escapes a quote). */
function parseCsv(text: string, where: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
    } else if (ch === '"' && field === '') {
      quoted = true;
    } else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
      line++;
    } else {
      field += ch;
    }
  }
  if (quoted) throw new Error(`${where}: unterminated quoted field (line ${line})`);
  row.push(field);
  if (row.length > 1 || row[0] !== '') rows.push(row);
  return rows;
}
