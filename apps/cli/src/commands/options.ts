import { checkAlpha, listMeasures, SCORE_VARIANTS } from '@zerolm/core';
import type { Options } from 'yargs';
import { UsageError } from '../errors';

export const measureOption: Options = {
  type: 'string',
  default: 'msv',
  describe: 'capacity measure of one matrix',
  // Resolved lazily so that the list reflects the registry.
  coerce: (name: string) => {
    if (!listMeasures().some((m) => m.name === name)) {
      throw new UsageError(`unknown measure "${name}" (known: ${listMeasures().map((m) => m.name).join(', ')})`);
    }
    return name;
  },
};

export const alphaOption: Options = {
  type: 'number',
  default: 0.5,
  describe: 'balance between Attention (alpha) and FFN (1 - alpha) capacity, in [0, 1]',
  coerce: (alpha: number) => {
    try {
      checkAlpha(alpha);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    return alpha;
  },
};

export const variantOption: Options = {
  type: 'string',
  default: 'linear',
  coerce: (value: string) => oneOf('variant', SCORE_VARIANTS)(value),
  describe: 'linear: sum_l [alpha A_l + (1-alpha) F_l]; log: the same over log(1 + .)',
};

export const jsonOption: Options = { type: 'boolean', default: false, describe: 'print one JSON object on stdout' };

export function positiveInteger(name: string, minimum = 1) {
  return (value: number) => {
    if (!Number.isInteger(value) || value < minimum) throw new UsageError(`--${name} must be an integer >= ${minimum} (got ${value})`);
    return value;
  };
}

/**
 * A closed set of values checked by coerce rather than yargs `choices`, whose multi-line
 * "Invalid values:" message does not fit the one-line error contract.
 */
export function oneOf<T extends string>(name: string, values: readonly T[]) {
  return (value: string): T => {
    if (!(values as readonly string[]).includes(value)) throw new UsageError(`--${name} must be one of ${values.join(', ')} (got "${value}")`);
    return value as T;
  };
}
