/** What a classifier says about one input, from D's K class logits (the fake logit is 0). */
export interface Prediction {
  /** Name of the most probable class. */
  label: string;
  /** Its index (= its logit's position). */
  index: number;
  /** Its probability p(class | x, real). */
  probability: number;
  /** p(class | x, real) for every class (softmax of the logits; sums to 1). */
  probabilities: Record<string, number>;
  /** The topK most probable classes, most probable first (ties: lower index first). */
  top: { label: string; probability: number }[];
  /** D(x) = p(real | x) = sigmoid(logsumexp(logits)): how much the model believes x is a real example rather than a generated one. */
  realness: number;
}

/** D(x) = sigmoid(lse), without overflow for large |lse|. */
const sigmoid = (v: number) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));

/**
 * Predictions from row-major [n, K] logits, in float64: a stable softmax (shifted by the row max)
 * and lse = max + log(sum exp(l - max)). `temperature`: the logits are D's divided by it (a
 * calibrated export); realness stays D's own, sigmoid(logsumexp(temperature x logits)).
 */
export function predictionsFromLogits(
  logits: Float32Array,
  classes: readonly string[],
  topK = 3,
  temperature = 1,
): Prediction[] {
  const k = classes.length;
  if (logits.length % k !== 0)
    throw new RangeError(`predictionsFromLogits: ${logits.length} logits is not a multiple of ${k} classes`);
  if (!Number.isInteger(topK) || topK < 1) throw new RangeError(`topK must be a positive integer, got ${topK}`);
  const n = logits.length / k;
  const out: Prediction[] = [];
  const p = new Float64Array(k);
  const order = Array.from({ length: k }, (_, j) => j);
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * k, (i + 1) * k);
    let max = -Infinity;
    let arg = 0;
    for (let j = 0; j < k; j++) {
      if (row[j] > max) {
        max = row[j];
        arg = j;
      }
    }
    let sum = 0;
    for (let j = 0; j < k; j++) sum += p[j] = Math.exp(row[j] - max);
    let realMax = -Infinity;
    for (let j = 0; j < k; j++) realMax = Math.max(realMax, temperature * row[j]);
    let realSum = 0;
    for (let j = 0; j < k; j++) realSum += Math.exp(temperature * row[j] - realMax);
    const lse = realMax + Math.log(realSum); // logsumexp of D's own logits
    for (let j = 0; j < k; j++) p[j] /= sum;
    // fromEntries defines own properties, so a class named __proto__ (or any Object.prototype key) is kept.
    const probabilities: Record<string, number> = Object.fromEntries(classes.map((c, j) => [c, p[j]]));
    const top = order
      .slice()
      .sort((a, b) => p[b] - p[a] || a - b)
      .slice(0, Math.min(topK, k))
      .map((j) => ({ label: classes[j], probability: p[j] }));
    out.push({ label: classes[arg], index: arg, probability: p[arg], probabilities, top, realness: sigmoid(lse) });
  }
  return out;
}
