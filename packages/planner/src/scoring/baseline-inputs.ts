/**
 * What the published baselines (Wanda-sp, FLAP) read of a layer: the matrix that reads its units
 * (`o` for attention, `down` for the FFN; module-graph orientation, one row per input channel)
 * and the calibration moments of that matrix's input, per channel. Only through the
 * `Calibration` interface: E[h h^T] (its diagonal) and E[h].
 */
import type { HfModel } from '@zerolm/adapters';
import type { Layer } from '@zerolm/core';
import { groupRows, outputProjection } from '../calibration/ablation';
import type { Calibration } from '../calibration/calibrate';
import type { UnitKind } from './unit-norms';

/** One module's output matrix and the statistics of its input channels. */
export interface ChannelInputs {
  /** `channels x cols`, row-major: row j is what channel j feeds into the residual stream. */
  readonly weights: Float64Array;
  readonly channels: number;
  readonly cols: number;
  /** E[x_j^2] over the calibration tokens. */
  readonly meanSquare: Float64Array;
  /** E[x_j]. */
  readonly mean: Float64Array;
  /** Channels owned by each unit (a kv group's query channels of `o`; one neuron of `down`). */
  readonly units: readonly (readonly number[])[];
}

export function channelInputs(model: HfModel, calibration: Calibration, layerIndex: number, kind: UnitKind): ChannelInputs {
  const layer: Layer = model.graph.layers[layerIndex]!;
  const moments = kind === 'heads' ? calibration.layers[layerIndex]!.attention : calibration.layers[layerIndex]!.ffn;
  let weights: Float64Array;
  let channels: number;
  let cols: number;
  let units: number[][];
  if (kind === 'heads') {
    const o = outputProjection(model, layerIndex);
    weights = o.weights;
    channels = o.rows;
    cols = o.cols;
    units = Array.from({ length: layer.attention.kvHeads }, (_, g) => groupRows(layer, g));
  } else {
    const down = layer.ffn.matrices.find((m) => m.role === 'down')!;
    weights = Float64Array.from(down.values());
    channels = down.rows;
    cols = down.cols;
    units = Array.from({ length: channels }, (_, j) => [j]);
  }
  if (moments.dim !== channels) throw new Error(`internal: layer ${layerIndex} ${kind} statistics cover ${moments.dim} channels, its matrix ${channels}`);
  const meanSquare = new Float64Array(channels);
  for (let j = 0; j < channels; j++) meanSquare[j] = Math.max(0, moments.second[j * channels + j]!);
  return { weights, channels, cols, meanSquare, mean: Float64Array.from(moments.mean), units };
}

/** Per channel: the sum over its row of f(w). */
export function rowSums(inputs: ChannelInputs, f: (w: number) => number): Float64Array {
  const out = new Float64Array(inputs.channels);
  for (let j = 0; j < inputs.channels; j++) {
    let sum = 0;
    for (let c = j * inputs.cols; c < (j + 1) * inputs.cols; c++) sum += f(inputs.weights[c]!);
    out[j] = sum;
  }
  return out;
}
