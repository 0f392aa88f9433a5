/**
 * Fidelity of a variant against its reference, accumulated batch by batch so that no more than
 * one batch of model outputs is ever held.
 *
 * Decoders, per predicted position t (next token y_t, reference logits r, variant logits v,
 * p = softmax(r), q = softmax(v)):
 * - top-1 agreement: argmax r = argmax v;
 * - KL(p || q) = sum_i p_i (log p_i - log q_i), in nats;
 * - perplexity of a model: exp(mean over positions of -log softmax(logits)[y_t]).
 * Encoders, over the rows of `last_hidden_state` that the attention mask keeps:
 * - token cosine: cos(reference row, variant row), averaged over all kept tokens;
 * - sentence cosine: cos of the mean-pooled rows of one sequence, averaged over sequences.
 * Sums are kept in float64.
 */

// Bound once: global lookups inside Jest's vm context are slow in hot loops.
const { exp, log, sqrt } = Math;

/** Per-position summary of one model's logits for a batch. */
export interface LogitSummary {
  readonly positions: number;
  readonly vocab: number;
  /** log-sum-exp of each position's logits. */
  readonly logSumExp: Float64Array;
  /** Index of each position's largest logit (the first one on ties). */
  readonly argmax: Int32Array;
  /** softmax of the logits, [positions, vocab] (when asked for: the reference's, shared by all variants). */
  readonly probabilities?: Float32Array;
}

/** log-sum-exp and argmax of each row of `logits` ([positions, vocab], row-major), and optionally the softmax. */
export function summarizeLogits(logits: Float32Array, positions: number, vocab: number, withProbabilities = false): LogitSummary {
  if (logits.length !== positions * vocab) throw new Error(`logits hold ${logits.length} values, expected ${positions} x ${vocab}`);
  const logSumExp = new Float64Array(positions);
  const argmax = new Int32Array(positions);
  const probabilities = withProbabilities ? new Float32Array(positions * vocab) : undefined;
  for (let t = 0; t < positions; t++) {
    const base = t * vocab;
    let best = 0;
    let max = logits[base] as number;
    for (let i = 1; i < vocab; i++) {
      const value = logits[base + i] as number;
      if (value > max) {
        max = value;
        best = i;
      }
    }
    let sum = 0;
    if (probabilities) {
      for (let i = 0; i < vocab; i++) {
        const e = exp((logits[base + i] as number) - max);
        probabilities[base + i] = e;
        sum += e;
      }
      const scale = 1 / sum;
      for (let i = 0; i < vocab; i++) probabilities[base + i] = (probabilities[base + i] as number) * scale;
    } else {
      for (let i = 0; i < vocab; i++) sum += exp((logits[base + i] as number) - max);
    }
    logSumExp[t] = max + log(sum);
    argmax[t] = best;
  }
  return probabilities ? { positions, vocab, logSumExp, argmax, probabilities } : { positions, vocab, logSumExp, argmax };
}

/** Running mean negative log-likelihood of next tokens: the perplexity of one model. */
export class PerplexityAccumulator {
  private nllSum = 0;
  private count = 0;

  /** Adds the positions of one batch: `targets[t]` is the token that follows position t. */
  add(logits: Float32Array, summary: LogitSummary, targets: ArrayLike<number>): void {
    const { positions, vocab, logSumExp } = summary;
    if (targets.length !== positions) throw new Error(`${targets.length} targets for ${positions} positions`);
    for (let t = 0; t < positions; t++) {
      const target = targets[t] as number;
      if (target < 0 || target >= vocab) throw new Error(`token id ${target} is outside the model's vocabulary of ${vocab}`);
      this.nllSum += (logSumExp[t] as number) - (logits[t * vocab + target] as number);
    }
    this.count += positions;
  }

  get positions(): number {
    return this.count;
  }

  /** Mean negative log-likelihood per token, in nats. */
  get meanNll(): number {
    return this.count === 0 ? NaN : this.nllSum / this.count;
  }

  get perplexity(): number {
    return exp(this.meanNll);
  }
}

/** Top-1 agreement and mean KL(reference || variant) of next-token distributions. */
export class NextTokenAgreement {
  private agreements = 0;
  private klSum = 0;
  private count = 0;

  /**
   * Adds one batch. The reference summary must carry its probabilities p; then, with r and v the
   * two logit rows, KL(p || q) = sum_i p_i (r_i - v_i) + lse(v) - lse(r), which needs no
   * exponential per variant.
   */
  add(reference: Float32Array, referenceSummary: LogitSummary, variant: Float32Array, variantSummary: LogitSummary): void {
    const { positions, vocab, probabilities } = referenceSummary;
    if (!probabilities) throw new Error('the reference summary must include its probabilities (summarizeLogits(..., true))');
    if (variantSummary.positions !== positions || variantSummary.vocab !== vocab) {
      throw new Error(
        `the variant predicts ${variantSummary.positions} positions over ${variantSummary.vocab} tokens, the reference ${positions} over ${vocab}`,
      );
    }
    for (let t = 0; t < positions; t++) {
      if (referenceSummary.argmax[t] === variantSummary.argmax[t]) this.agreements++;
      const base = t * vocab;
      let expectedGap = 0;
      for (let i = 0; i < vocab; i++) {
        expectedGap += (probabilities[base + i] as number) * ((reference[base + i] as number) - (variant[base + i] as number));
      }
      const kl = expectedGap + (variantSummary.logSumExp[t] as number) - (referenceSummary.logSumExp[t] as number);
      // Rounding can leave a tiny negative value when the distributions are almost equal.
      this.klSum += kl > 0 ? kl : 0;
    }
    this.count += positions;
  }

  get positions(): number {
    return this.count;
  }

  get top1Agreement(): number {
    return this.count === 0 ? NaN : this.agreements / this.count;
  }

  get meanKl(): number {
    return this.count === 0 ? NaN : this.klSum / this.count;
  }
}

/**
 * cos(a, b) of two rows; 1 when both are zero (identical), 0 when only one is (no direction in
 * common), so a pruned-away representation counts as maximally different rather than NaN.
 */
export function cosine(a: ArrayLike<number>, aOffset: number, b: ArrayLike<number>, bOffset: number, length: number): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < length; i++) {
    const x = a[aOffset + i] as number;
    const y = b[bOffset + i] as number;
    dot += x * y;
    aa += x * x;
    bb += y * y;
  }
  if (aa === 0 || bb === 0) return aa === bb ? 1 : 0;
  const value = dot / (sqrt(aa) * sqrt(bb));
  return value > 1 ? 1 : value < -1 ? -1 : value;
}

/** Token and mean-pooled sentence cosine similarity of encoder outputs. */
export class EmbeddingAgreement {
  private tokenSum = 0;
  private tokenCount = 0;
  private sentenceSum = 0;
  private sentenceCount = 0;

  /**
   * One batch of `last_hidden_state` ([batch, seqLen, hidden]) from both models; `lengths[b]` is
   * how many leading positions of sequence b are real tokens (the rest is padding).
   */
  add(reference: Float32Array, variant: Float32Array, lengths: readonly number[], seqLen: number, hidden: number): void {
    const expected = lengths.length * seqLen * hidden;
    if (reference.length !== expected || variant.length !== expected) {
      throw new Error(`hidden states hold ${reference.length} and ${variant.length} values, expected ${lengths.length} x ${seqLen} x ${hidden}`);
    }
    const referencePooled = new Float64Array(hidden);
    const variantPooled = new Float64Array(hidden);
    lengths.forEach((length, b) => {
      referencePooled.fill(0);
      variantPooled.fill(0);
      for (let t = 0; t < length; t++) {
        const offset = (b * seqLen + t) * hidden;
        this.tokenSum += cosine(reference, offset, variant, offset, hidden);
        for (let i = 0; i < hidden; i++) {
          referencePooled[i] += reference[offset + i] as number;
          variantPooled[i] += variant[offset + i] as number;
        }
      }
      this.tokenCount += length;
      // Dividing both pooled sums by the length would not change their cosine.
      this.sentenceSum += cosine(referencePooled, 0, variantPooled, 0, hidden);
      this.sentenceCount++;
    });
  }

  get tokens(): number {
    return this.tokenCount;
  }

  get sentences(): number {
    return this.sentenceCount;
  }

  get tokenCosine(): number {
    return this.tokenCount === 0 ? NaN : this.tokenSum / this.tokenCount;
  }

  get sentenceCosine(): number {
    return this.sentenceCount === 0 ? NaN : this.sentenceSum / this.sentenceCount;
  }
}
