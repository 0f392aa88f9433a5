/** `compare --plot`: parameters against fidelity, one labelled point per model, the reference marked. */
import { scatterSvg } from './svg';
import type { ComparisonReport, ModelKind } from './compare';

/** Fidelity measures a plot can show on its y axis, and which model kind has them. */
export const FIDELITY_METRICS = {
  kl: { kind: 'decoder', label: 'mean KL(reference || model) of next-token distributions, nats (lower is closer)' },
  top1: { kind: 'decoder', label: 'top-1 next-token agreement with the reference' },
  'token-cosine': { kind: 'encoder', label: 'mean cosine similarity of token embeddings to the reference' },
  'sentence-cosine': { kind: 'encoder', label: 'mean cosine similarity of mean-pooled sentence embeddings to the reference' },
} as const satisfies Record<string, { kind: ModelKind; label: string }>;

export type FidelityMetric = keyof typeof FIDELITY_METRICS;

export const DEFAULT_FIDELITY_METRIC: Record<ModelKind, FidelityMetric> = { decoder: 'kl', encoder: 'token-cosine' };

function fidelityValue(fidelity: ComparisonReport['models'][number]['fidelity'], metric: FidelityMetric): number {
  switch (metric) {
    case 'kl':
      return fidelity.kind === 'decoder' ? fidelity.klDivergence : NaN;
    case 'top1':
      return fidelity.kind === 'decoder' ? fidelity.top1Agreement : NaN;
    case 'token-cosine':
      return fidelity.kind === 'encoder' ? fidelity.tokenCosine : NaN;
    case 'sentence-cosine':
      return fidelity.kind === 'encoder' ? fidelity.sentenceCosine : NaN;
  }
}

/** The SVG scatter of total parameters (x) against the chosen fidelity measure (y). */
export function comparisonSvg(report: ComparisonReport, metric: FidelityMetric = DEFAULT_FIDELITY_METRIC[report.kind]): string {
  const info = FIDELITY_METRICS[metric];
  if (!info) throw new Error(`unknown fidelity measure "${metric}" (known: ${Object.keys(FIDELITY_METRICS).join(', ')})`);
  if (info.kind !== report.kind) {
    throw new Error(`fidelity measure "${metric}" applies to ${info.kind}s; these models are ${report.kind}s (use ${DEFAULT_FIDELITY_METRIC[report.kind]})`);
  }
  return scatterSvg({
    title: `${report.models.length - 1} variant(s) of ${report.models[0]!.label}`,
    xLabel: 'parameters (total)',
    yLabel: info.label,
    points: report.models.map((m) => ({
      x: m.params.total ?? m.params.modules,
      y: fidelityValue(m.fidelity, metric),
      label: m.role === 'reference' ? `${m.label} (reference)` : m.label,
      highlight: m.role === 'reference',
    })),
  });
}
