/**
 * Section `normals`: nanoseconds per standard normal from core's `Rng.normal()` (ziggurat) next
 * to the Box-Muller transform on the same xoshiro128** uniforms (what `Rng.normal()` used to be),
 * in this plain Node process. Spec weights are drawn one normal at a time, so this is the cost
 * that `rank --init sampled` pays ~1.9 * 10^9 times per benchmark.
 */
import { performance } from 'node:perf_hooks';
import { Rng } from '@zerolm/core';
import type { BenchContext, BenchSection } from './registry';
import { median } from './timing';

const { log, sqrt, sin, cos, PI } = Math;

/** Box-Muller with both values of each pair used, on `Rng.uniform()`: the reference. */
class BoxMuller {
  private spare: number | undefined;

  constructor(private readonly rng: Rng) {}

  normal(): number {
    if (this.spare !== undefined) {
      const value = this.spare;
      this.spare = undefined;
      return value;
    }
    let u = 0;
    while (u === 0) u = this.rng.uniform();
    const v = this.rng.uniform();
    const r = sqrt(-2 * log(u));
    this.spare = r * sin(2 * PI * v);
    return r * cos(2 * PI * v);
  }
}

/**
 * ns per draw of one block of `count` draws. One loop per source (not a callback), so each call
 * site sees one class and V8 inlines the draw as it does in `drawMatrix`.
 */
function timeBlock(source: Rng | BoxMuller, count: number, sink: Float64Array): number {
  const start = performance.now();
  if (source instanceof Rng) {
    for (let i = 0; i < count; i++) sink[i & 4095] = source.normal();
  } else {
    for (let i = 0; i < count; i++) sink[i & 4095] = source.normal();
  }
  return ((performance.now() - start) * 1e6) / count;
}

export const normalsSection: BenchSection = {
  name: 'normals',
  title: 'standard normals: ns per draw in plain Node, Rng.normal() (ziggurat) vs Box-Muller on the same uniforms',
  async run(context: BenchContext) {
    const count = context.quick ? 2_000_000 : 10_000_000;
    const pairs = context.quick ? 3 : 9;
    const ziggurat = new Rng('bench/normals');
    const boxMuller = new BoxMuller(new Rng('bench/normals'));
    const sink = new Float64Array(4096);
    // Blocks alternate (one untimed pair first), so a change in the machine's load hits both
    // sources alike; the speed-up is the median of the pairwise ratios.
    const zigguratNs: number[] = [];
    const boxMullerNs: number[] = [];
    const ratios: number[] = [];
    for (let pair = 0; pair <= pairs; pair++) {
      const z = timeBlock(ziggurat, count, sink);
      const b = timeBlock(boxMuller, count, sink);
      if (pair === 0) continue;
      zigguratNs.push(z);
      boxMullerNs.push(b);
      ratios.push(b / z);
    }
    if (sink.some((x) => !Number.isFinite(x))) throw new Error('a drawn normal is not finite');
    const range = (values: number[], digits: number): string =>
      `median ${median(values).toFixed(digits)} (min ${Math.min(...values).toFixed(digits)}, max ${Math.max(...values).toFixed(digits)})`;
    context.print(`${pairs} alternating pairs of blocks of ${count.toLocaleString('en-US')} draws`);
    context.print(`Rng.normal() (ziggurat)   ns/draw ${range(zigguratNs, 1)}`);
    context.print(`Box-Muller (reference)    ns/draw ${range(boxMullerNs, 1)}`);
    context.print(`speed-up (pairwise)       ${range(ratios, 2)}x`);
  },
};
