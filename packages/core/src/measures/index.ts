/**
 * The built-in capacity measures. Each lives in its own file as a plain object (importing a
 * file registers nothing); this entry registers all of them once, so `getMeasure('msv')` etc. work
 * after importing the package, and re-exports them and the registry.
 */
import { erankMeasure } from './erank';
import { logdetMeasure } from './logdet';
import { type CapacityMeasure, listMeasures, registerMeasure } from './measure';
import { msvMeasure } from './msv';
import { nuclearMeasure } from './nuclear';
import { nuclearBoundMeasure } from './nuclear-bound';
import { srankMeasure } from './srank';

export * from './measure';
export { marchenkoPasturSum } from './marchenko-pastur';
export { erankMeasure, logdetMeasure, msvMeasure, nuclearBoundMeasure, nuclearMeasure, srankMeasure };

/** The built-in measures, `msv` (the paper's) first. */
export const BUILT_IN_MEASURES: readonly CapacityMeasure[] = [msvMeasure, nuclearMeasure, nuclearBoundMeasure, logdetMeasure, erankMeasure, srankMeasure];

/** Registers every built-in measure not registered yet (so calling it again is harmless). */
export function registerBuiltInMeasures(): void {
  const known = new Set(listMeasures().map((m) => m.name));
  for (const measure of BUILT_IN_MEASURES) if (!known.has(measure.name)) registerMeasure(measure);
}

registerBuiltInMeasures();
