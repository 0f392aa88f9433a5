/**
 * The generator's ground truth for tests: the shapes it writes per layer and every module matrix
 * as the module applies it (`[in, out]`, `y = x W`), planted zeros included, drawn from the same
 * seeded streams the ONNX file was written from. A matcher that finds the right projections
 * reads exactly these values back.
 */
import type { ResolvedSpec } from './spec';
import { drawTensor, plantedSlices, zeroColumns, zeroRows } from './weights';

export type TruthRole = 'q' | 'k' | 'v' | 'o' | 'up' | 'gate' | 'down';

export interface TruthLayer {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly ffn: number;
  /** Each matrix's values, `[in, out]` row-major, by role (gate only for gated FFNs). */
  readonly matrices: Partial<Record<TruthRole, () => Float32Array>>;
}

/** State-dict keys of one layer's matrices, as the family's modeling code names them. */
function keysOf(spec: ResolvedSpec, l: number): Record<TruthRole, string> | undefined {
  switch (spec.family) {
    case 'llama':
    case 'qwen2':
    case 'mistral':
    case 'qwen3':
    case 'smollm3':
    case 'granite':
    case 'olmo2':
    case 'gemma2':
    case 'gemma3_text':
    case 'phi3': {
      // Phi-3's qkv_proj and gate_up_proj are drawn as their parts, under these names.
      const p = `model.layers.${l}`;
      return {
        q: `${p}.self_attn.q_proj.weight`, k: `${p}.self_attn.k_proj.weight`, v: `${p}.self_attn.v_proj.weight`, o: `${p}.self_attn.o_proj.weight`,
        gate: `${p}.mlp.gate_proj.weight`, up: `${p}.mlp.up_proj.weight`, down: `${p}.mlp.down_proj.weight`,
      };
    }
    case 'gpt_neox': {
      // query_key_value is drawn as its three parts, under these names.
      const p = `gpt_neox.layers.${l}`;
      return {
        q: `${p}.attention.query.weight`, k: `${p}.attention.key.weight`, v: `${p}.attention.value.weight`, o: `${p}.attention.dense.weight`,
        up: `${p}.mlp.dense_h_to_4h.weight`, down: `${p}.mlp.dense_4h_to_h.weight`, gate: '',
      };
    }
    case 'mpnet': {
      const p = `encoder.layer.${l}`;
      return {
        q: `${p}.attention.attn.q.weight`, k: `${p}.attention.attn.k.weight`, v: `${p}.attention.attn.v.weight`, o: `${p}.attention.attn.o.weight`,
        up: `${p}.intermediate.dense.weight`, down: `${p}.output.dense.weight`, gate: '',
      };
    }
    case 'nomic_bert': {
      // Wqkv drawn as its parts; fc12 goes through the activation (the gate role).
      const p = `encoder.layers.${l}`;
      return {
        q: `${p}.attn.Wq.weight`, k: `${p}.attn.Wk.weight`, v: `${p}.attn.Wv.weight`, o: `${p}.attn.out_proj.weight`,
        gate: `${p}.mlp.fc12.weight`, up: `${p}.mlp.fc11.weight`, down: `${p}.mlp.fc2.weight`,
      };
    }
    case 'modernbert': {
      // Wqkv and Wi are drawn as their parts (Wi_input goes through the activation: the gate role).
      const p = `${spec.task === 'fill-mask' ? 'model.' : ''}layers.${l}`;
      return {
        q: `${p}.attn.Wq.weight`, k: `${p}.attn.Wk.weight`, v: `${p}.attn.Wv.weight`, o: `${p}.attn.Wo.weight`,
        gate: `${p}.mlp.Wi_input.weight`, up: `${p}.mlp.Wi_gate.weight`, down: `${p}.mlp.Wo.weight`,
      };
    }
    case 'bert':
    case 'roberta':
    case 'xlm-roberta':
    case 'electra': {
      const body = spec.task === 'fill-mask' ? (spec.family === 'bert' ? 'bert.' : 'roberta.') : '';
      const p = `${body}encoder.layer.${l}`;
      return {
        q: `${p}.attention.self.query.weight`, k: `${p}.attention.self.key.weight`, v: `${p}.attention.self.value.weight`,
        o: `${p}.attention.output.dense.weight`, up: `${p}.intermediate.dense.weight`, down: `${p}.output.dense.weight`, gate: '',
      };
    }
    default:
      return undefined;
  }
}

/** The truth of every layer of `spec`, or undefined for a family the truth does not cover. */
export function truthLayers(spec: ResolvedSpec): TruthLayer[] | undefined {
  if (!keysOf(spec, 0)) return undefined;
  return spec.perLayer.map((shape, l) => {
    const keys = keysOf(spec, l)!;
    const D = spec.headDim;
    const planted = plantedSlices(spec, l);
    const projection = (key: string, rows: number, cols: number, zero: (w: Float32Array) => void) => () => {
      const w = drawTensor(spec, key, 'matrix', rows, cols);
      zero(w);
      return w;
    };
    const qWidth = shape.heads * D;
    const kvWidth = shape.kvHeads * D;
    return {
      heads: shape.heads,
      kvHeads: shape.kvHeads,
      headDim: D,
      ffn: shape.ffn,
      matrices: {
        q: projection(keys.q, spec.hidden, qWidth, (w) => zeroColumns(w, spec.hidden, qWidth, planted.queryHeads, D)),
        k: projection(keys.k, spec.hidden, kvWidth, (w) => zeroColumns(w, spec.hidden, kvWidth, planted.kvHeads, D)),
        v: projection(keys.v, spec.hidden, kvWidth, (w) => zeroColumns(w, spec.hidden, kvWidth, planted.kvHeads, D)),
        o: projection(keys.o, qWidth, spec.hidden, (w) => zeroRows(w, spec.hidden, planted.queryHeads, D)),
        ...(keys.gate ? { gate: projection(keys.gate, spec.hidden, shape.ffn, (w) => zeroColumns(w, spec.hidden, shape.ffn, planted.neurons, 1)) } : {}),
        up: projection(keys.up, spec.hidden, shape.ffn, (w) => zeroColumns(w, spec.hidden, shape.ffn, planted.neurons, 1)),
        down: projection(keys.down, shape.ffn, spec.hidden, (w) => zeroRows(w, spec.hidden, planted.neurons, 1)),
      },
    };
  });
}
