/**
 * The Pareto front of (parameters, score): candidates no other candidate beats on both fewer
 * (or equal) parameters and a higher (or equal) score.
 */

/** Non-dominated points, by parameters ascending (so scores strictly ascend too). */
export function paretoFront<T extends { params: number; score: number }>(points: readonly T[]): T[] {
  const sorted = [...points].sort((a, b) => a.params - b.params || b.score - a.score);
  const front: T[] = [];
  for (const p of sorted) {
    if (front.length === 0 || p.score > front[front.length - 1]!.score) {
      // Same parameters and a higher score replaces nothing: sorting put the higher score first.
      front.push(p);
    }
  }
  return front;
}
