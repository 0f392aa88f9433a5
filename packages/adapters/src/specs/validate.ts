/**
 * Small checks for JSON read from spec files. Each names the path of the offending value
 * (`entry 12: hparams.model_hparam_overrides.hidden_size`) so a malformed file gives one clear
 * line instead of a NaN three layers further down.
 */

export type JsonObject = Record<string, unknown>;

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function expectObject(value: unknown, where: string): JsonObject {
  if (!isObject(value)) throw new Error(`${where} must be an object (got ${describeValue(value)})`);
  return value;
}

export function expectArray(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${where} must be an array (got ${describeValue(value)})`);
  return value;
}

export function expectNumber(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Error(`${where} must be a finite number (got ${describeValue(value)})`);
  }
  return value;
}

export function expectPositiveNumber(value: unknown, where: string): number {
  const n = expectNumber(value, where);
  if (n <= 0) throw new Error(`${where} must be positive (got ${n})`);
  return n;
}

export function expectInteger(value: unknown, where: string, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`${where} must be an integer >= ${min} (got ${describeValue(value)})`);
  }
  return value;
}

export function expectString(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new Error(`${where} must be a non-empty string (got ${describeValue(value)})`);
  }
  return value;
}

export function expectBoolean(value: unknown, where: string): boolean {
  if (typeof value !== 'boolean') throw new Error(`${where} must be true or false (got ${describeValue(value)})`);
  return value;
}

/** An integer, or a list of one integer per layer (archai's "flex" configs accept both). */
export function expectPerLayerIntegers(value: unknown, layers: number, where: string): number[] {
  if (typeof value === 'number') return new Array<number>(layers).fill(expectInteger(value, where));
  const list = expectArray(value, where);
  if (list.length !== layers) throw new Error(`${where} must list one value per layer (${layers}), got ${list.length}`);
  return list.map((v, i) => expectInteger(v, `${where}[${i}]`));
}
