import type { ModuleGraph } from '@zerolm/core';
import { flexibertToGraph, looksLikeFlexibertEntry, parseFlexibertEntry, type FlexibertGraphOptions } from './flexibert';
import { looksLikeLtsEntry, ltsToGraph, parseLtsEntry } from './lts';
import { describeValue, isObject } from './validate';
import { looksLikeZerolmSpec, parseZerolmSpec, ZEROLM_SPEC_FORMAT, zerolmSpecToGraph } from './zerolm-spec';

export type SpecFormat = 'flexibert' | 'lts-gpt2' | 'zerolm-spec';

export interface SpecGraphOptions {
  /** Extra seed text, to draw a different (still reproducible) set of weights. */
  readonly seed?: string;
  /** FlexiBERT only: see `FlexibertGraphOptions.dimensions`. */
  readonly flexibertDimensions?: FlexibertGraphOptions['dimensions'];
}

const EXPECTED =
  'a FlexiBERT benchmark entry (with hparams.model_hparam_overrides.nas_config.encoder_layers), ' +
  'an LTS GPT-2 entry ({id, model_config}) or bare model_config (with d_model, n_layer, n_head, d_inner), ' +
  `or a ${ZEROLM_SPEC_FORMAT} document ({"format": "${ZEROLM_SPEC_FORMAT}", "name", "hiddenSize", "layers": [...]})`;

/** Which spec format `json` is written in, or undefined when it is none of them. */
export function detectSpecFormat(json: unknown): SpecFormat | undefined {
  if (looksLikeZerolmSpec(json)) return 'zerolm-spec';
  if (looksLikeFlexibertEntry(json)) return 'flexibert';
  if (looksLikeLtsEntry(json)) return 'lts-gpt2';
  return undefined;
}

/**
 * Builds the module graph of one architecture spec, whatever its format (FlexiBERT entry, LTS
 * entry or bare LTS model_config, zerolm-spec). Throws naming the accepted formats otherwise.
 */
export function specToGraph(json: unknown, options: SpecGraphOptions = {}): ModuleGraph {
  const seed = options.seed === undefined ? {} : { seed: options.seed };
  switch (detectSpecFormat(json)) {
    case 'zerolm-spec':
      return zerolmSpecToGraph(parseZerolmSpec(json), seed);
    case 'flexibert':
      return flexibertToGraph(parseFlexibertEntry(json), {
        ...seed,
        ...(options.flexibertDimensions === undefined ? {} : { dimensions: options.flexibertDimensions }),
      });
    case 'lts-gpt2':
      return ltsToGraph(parseLtsEntry(json), seed);
    case undefined:
      break;
  }
  if (Array.isArray(json)) {
    throw new Error(
      `expected one architecture spec, got an array of ${json.length} (a whole benchmark file? ` +
        'load it with loadFlexibertBenchmark / loadLtsBenchmark and convert each entry)',
    );
  }
  if (isObject(json) && json['format'] !== undefined) {
    throw new Error(`unknown spec format ${describeValue(json['format'])}; expected "${ZEROLM_SPEC_FORMAT}"`);
  }
  const got = isObject(json) ? `an object with keys ${Object.keys(json).slice(0, 8).join(', ') || '(none)'}` : describeValue(json);
  throw new Error(`unrecognised architecture spec (got ${got}); expected ${EXPECTED}`);
}
