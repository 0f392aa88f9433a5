/**
 * A progress bar on stderr, drawn only on a terminal and only once the work has run for a while,
 * so short runs and piped output stay clean.
 */
export interface Progress {
  /** `phase` names the current stage, shown after the label. */
  update(done: number, total: number, phase?: string): void;
  done(): void;
}

export function progressBar(label: string, options: { stream?: NodeJS.WriteStream; delayMs?: number } = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const delayMs = options.delayMs ?? 1500;
  const started = Date.now();
  let drawn = false;
  let lastDraw = 0;
  if (!stream.isTTY) return { update() {}, done() {} };
  return {
    update(done, total, phase) {
      const now = Date.now();
      if (now - started < delayMs || (now - lastDraw < 100 && done < total)) return;
      lastDraw = now;
      drawn = true;
      const width = 30;
      const fraction = total > 0 ? done / total : 0;
      const filled = Math.round(fraction * width);
      const elapsed = (now - started) / 1000;
      const eta = fraction > 0 ? elapsed * (1 / fraction - 1) : 0;
      stream.write(`\r\x1b[2K${label}${phase ? ` (${phase})` : ''} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${elapsed.toFixed(0)}s, ~${eta.toFixed(0)}s left `);
    },
    done() {
      if (drawn) stream.write('\r\x1b[2K');
    },
  };
}
