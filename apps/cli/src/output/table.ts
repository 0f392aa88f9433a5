/** Aligned plain-text tables: text columns left-aligned, numeric columns right-aligned. */

export type Cell = string | number | undefined | null;

export interface Column {
  header: string;
  /** Right-align (numbers). Defaults to true when every value in the column is a number. */
  numeric?: boolean;
}

export function formatTable(columns: readonly (Column | string)[], rows: readonly Cell[][]): string {
  const cols = columns.map((c) => (typeof c === 'string' ? { header: c } : c));
  const text = rows.map((row) => cols.map((_, j) => cellText(row[j])));
  const numeric = cols.map((c, j) => c.numeric ?? rows.every((row) => typeof row[j] === 'number' || row[j] == null));
  const widths = cols.map((c, j) => Math.max(c.header.length, ...text.map((r) => (r[j] as string).length)));
  const line = (cells: string[]) =>
    cells.map((cell, j) => (numeric[j] ? cell.padStart(widths[j] as number) : cell.padEnd(widths[j] as number))).join('  ').trimEnd();
  return [line(cols.map((c) => c.header)), line(widths.map((w) => '-'.repeat(w))), ...text.map(line)].join('\n');
}

function cellText(value: Cell): string {
  if (value === undefined || value === null) return '-';
  if (typeof value === 'number') return formatNumber(value);
  return value;
}

/** Compact, stable number formatting for tables (4 significant digits, integers as they are). */
export function formatNumber(value: number, digits = 4): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) return value.toExponential(digits - 1);
  return value.toFixed(Math.max(0, digits - 1 - Math.floor(Math.log10(abs || 1))));
}

/** 12345678 -> "12.35M" */
export function formatCount(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(2)}G`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(1)}K`;
  return String(value);
}
