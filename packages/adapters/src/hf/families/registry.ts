/**
 * The family registry: what is particular to one Hugging Face `model_type`, in one small file per
 * family (as transformers.js keeps one folder per model), registered by name. The structural
 * matcher (`../match.ts`) stays family-agnostic; a family says how its config.json names the
 * shapes, how its packed weights are laid out, what its config needs after pruning, and what
 * makes pruning it unsafe. Adding a family is one file here (plus its import in `index.ts`) and
 * its fixture.
 */

/**
 * Families that share an export pattern: encoders; decoders with a learned position table
 * (`gpt2`); decoders with rotary positions (`llama`, and every family built like it).
 */
export type ModelFamily = 'encoder' | 'gpt2' | 'llama';

/** config.json keys of one shape, first key the one Hugging Face writes, the rest aliases. */
export type ConfigKeys = readonly string[];

export interface FamilyConfigKeys {
  readonly layers: ConfigKeys;
  readonly hidden: ConfigKeys;
  readonly heads: ConfigKeys;
  /** Key-value heads (grouped-query attention); absent: as many as heads. */
  readonly kvHeads?: ConfigKeys;
  readonly ffnWidth: ConfigKeys;
  /** When the FFN width key may be missing: its value from the hidden size (GPT-2: 4 * n_embd). */
  readonly ffnWidthDefault?: (hidden: number) => number;
  /** The explicit head size key, where the family honours one (else hidden / heads). */
  readonly headDim?: string;
  readonly activation: ConfigKeys;
  readonly activationDefault: string;
}

/** How a packed q/k/v projection orders its output features. */
export type PackedQkvLayout =
  /** `[q | k | v]`: all query heads, then key heads, then value heads (Phi-3, the onnxruntime builder, ModernBERT). */
  | 'concatenated'
  /** `[heads, 3, head_dim]`: per head its q, k and v (GPT-NeoX `query_key_value`). */
  | 'per-head';

/** How a packed gate-up projection orders its output features. */
export type PackedGateUpLayout =
  /** `[gate | up]` (Phi-3 `gate_up_proj.chunk(2)`: first half gate). */
  | 'gate-first'
  /** `[input | gate]` where the first half goes through the activation (ModernBERT `Wi`: `input, gate = chunk(2)`; act(input) * gate). */
  | 'activation-first';

/** One layer of a pruned model, as the exporter writes config.json. */
export interface PrunedLayerShape {
  readonly heads: number;
  readonly kvHeads: number;
  readonly ffnWidth: number;
  /** Index of the layer in the source model. */
  readonly sourceLayer: number;
}

/**
 * Structural traits, what the graph of an export shows: told from an unknown model's graph too,
 * to name the closest supported family.
 */
export interface FamilyTraits {
  readonly norm: 'layer' | 'rms';
  readonly ffn: 'plain' | 'gated';
  readonly positions: 'learned' | 'rotary' | 'relative';
  readonly qkv: 'separate' | 'fused';
}

export interface FamilyDefinition {
  /** Hugging Face `model_type`. */
  readonly modelType: string;
  /** Readable name (README). */
  readonly title: string;
  readonly group: ModelFamily;
  readonly decoder: boolean;
  /** transformers.js 4.3.1 pipelines that load it (README). */
  readonly pipelines: readonly string[];
  /** What sets the family apart, in a few words (README). */
  readonly special: string;
  readonly keys: FamilyConfigKeys;
  readonly traits: FamilyTraits;
  /** Learned positions start at `pad_token_id + 1` (RoBERTa): how many table rows are not positions. */
  readonly positionOffset?: (raw: Readonly<Record<string, unknown>>) => number;
  /** Layouts of packed projections, where the family packs them. */
  readonly packedQkv?: PackedQkvLayout;
  readonly packedGateUp?: PackedGateUpLayout;
  /** config.json lists indexed by layer, re-indexed when layers are dropped (besides `layer_types`). */
  readonly perLayerKeys?: readonly string[];
  /** Whether config.json states `head_dim` after pruning (families whose modeling code honours it). */
  readonly writesHeadDim?: boolean;
  /**
   * Extra config.json rewrites after pruning (beyond layer counts, head counts, FFN widths,
   * head_dim and per-layer lists), applied to the copy that will be written.
   */
  readonly rewriteConfig?: (config: Record<string, unknown>, layers: readonly PrunedLayerShape[], source: Readonly<Record<string, unknown>>) => void;
  /** Why a model of this family cannot be pruned safely (one line), or undefined when it can. */
  readonly pruneRefusal?: (raw: Readonly<Record<string, unknown>>) => string | undefined;
}

const FAMILIES = new Map<string, FamilyDefinition>();

export function registerFamily(family: FamilyDefinition): void {
  if (FAMILIES.has(family.modelType)) throw new Error(`family "${family.modelType}" is registered twice`);
  FAMILIES.set(family.modelType, family);
}

/** Every registered family, in registration order. */
export function registeredFamilies(): FamilyDefinition[] {
  return [...FAMILIES.values()];
}

export function findFamily(modelType: string): FamilyDefinition | undefined {
  return FAMILIES.get(modelType);
}

/** The supported families as a Markdown table (the README's list is this table, checked by a test). */
export function familiesMarkdown(): string {
  const rows = registeredFamilies().map(
    (f) => `| \`${f.modelType}\` | ${f.title} | ${f.decoder ? 'decoder' : 'encoder'} | ${f.pipelines.map((p) => `\`${p}\``).join(', ')} | ${f.special} |`,
  );
  return ['| `model_type` | family | kind | transformers.js pipelines | what is particular |', '|---|---|---|---|---|', ...rows].join('\n');
}
