import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBuiltin } from '../../src/data/sources/builtin.js';
import { SemiganError } from '../../src/errors.js';
import { frechetDistance, gaussianStats, jacobiEigen, sqrtPsd } from '../../src/eval/frechet.js';
import { featureNetFeatures, featureNetPredict, loadFeatureNet } from '../../src/eval/feature_net.js';
import { sampleQuality } from '../../src/eval/sample_quality.js';
import { Rng } from '../../src/rng.js';
import { allRows } from '../../src/data/rows.js';

const near = (got: number, want: number, tol: number, what = '') =>
  assert.ok(Math.abs(got - want) <= tol, `${what} ${got} != ${want} (tol ${tol})`);

test('jacobiEigen: eigenvalues and eigenvectors of a hand-made symmetric 3x3', () => {
  // [[2,-1,0],[-1,2,-1],[0,-1,2]]: characteristic polynomial (2-l)((2-l)^2 - 2) = 0
  //   -> l = 2 - sqrt2, 2, 2 + sqrt2; eigenvectors (1, sqrt2, 1)/2, (1, 0, -1)/sqrt2, (1, -sqrt2, 1)/2.
  const a = [2, -1, 0, -1, 2, -1, 0, -1, 2];
  const { values, vectors } = jacobiEigen(a, 3);
  const s2 = Math.SQRT2;
  const want = [2 - s2, 2, 2 + s2];
  for (let i = 0; i < 3; i++) near(values[i], want[i], 1e-12, `eigenvalue ${i}`);
  const wantVec = [
    [0.5, s2 / 2, 0.5],
    [1 / s2, 0, -1 / s2],
    [0.5, -s2 / 2, 0.5],
  ];
  for (let j = 0; j < 3; j++) {
    const v = [0, 1, 2].map((k) => vectors[k * 3 + j]);
    const sign = Math.sign(v[0]) || 1; // eigenvectors are defined up to sign
    for (let k = 0; k < 3; k++) near(sign * v[k], wantVec[j][k], 1e-12, `vector ${j}[${k}]`);
  }
  // A second one with a repeated eigenvalue: [[2,1,1],[1,2,1],[1,1,2]] = I + J -> 1, 1, 4.
  const b = jacobiEigen([2, 1, 1, 1, 2, 1, 1, 1, 2], 3).values;
  [1, 1, 4].forEach((w, i) => near(b[i], w, 1e-12, `repeated ${i}`));
});

test('jacobiEigen reconstructs a random symmetric 64x64 matrix; sqrtPsd squares back', () => {
  const n = 64;
  const rng = new Rng(7);
  const g = new Float64Array(n * n).map(() => rng.uniform() - 0.5);
  // PSD: G G^T
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += g[i * n + k] * g[j * n + k];
      a[i * n + j] = s;
    }
  const { values, vectors } = jacobiEigen(a, n);
  for (let i = 1; i < n; i++) assert.ok(values[i] >= values[i - 1], 'ascending');
  let maxErr = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += vectors[i * n + k] * values[k] * vectors[j * n + k];
      maxErr = Math.max(maxErr, Math.abs(s - a[i * n + j]));
    }
  assert.ok(maxErr < 1e-10, `V diag V^T differs from A by ${maxErr}`);
  const r = sqrtPsd(a, n);
  let sqErr = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += r[i * n + k] * r[k * n + j];
      sqErr = Math.max(sqErr, Math.abs(s - a[i * n + j]));
    }
  assert.ok(sqErr < 1e-10, `sqrt(A)^2 differs from A by ${sqErr}`);
});

/** n values with sample mean mu and unbiased sample std s exactly: mu +- s*sqrt((n-1)/n), n even. */
function twoPoint(n: number, mu: number, s: number): Float64Array {
  const c = s * Math.sqrt((n - 1) / n);
  return Float64Array.from({ length: n }, (_, i) => mu + (i % 2 ? c : -c));
}

test('FD of 1-D samples equals (mu1 - mu2)^2 + (s1 - s2)^2', () => {
  const x = twoPoint(100, 1.5, 2);
  const y = twoPoint(40, -0.5, 0.5);
  const st = gaussianStats(x, 1);
  near(st.mean[0], 1.5, 1e-12, 'mean');
  near(st.cov[0], 4, 1e-12, 'variance');
  near(frechetDistance(x, y, 1), (1.5 + 0.5) ** 2 + (2 - 0.5) ** 2, 1e-10, 'FD');
  // Diagonal covariances in 3-D: the formula separates per axis. Sign patterns from orthogonal
  // Walsh columns (bits 0, 1, 2 of the row index) make the sample covariance exactly diagonal.
  const n = 16;
  const mus = [
    [0, 1, 2],
    [1, 1, -1],
  ];
  const sds = [
    [1, 2, 3],
    [3, 2, 0.5],
  ];
  const rows = mus.map((m, set) => {
    const out = new Float64Array(n * 3);
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < 3; d++) {
        const c = sds[set][d] * Math.sqrt((n - 1) / n);
        out[i * 3 + d] = m[d] + ((i >> d) & 1 ? c : -c);
      }
    }
    return out;
  });
  const s1 = gaussianStats(rows[0], 3);
  const s2 = gaussianStats(rows[1], 3);
  for (const [set, st] of [s1, s2].entries()) {
    for (let i = 0; i < 3; i++) {
      near(st.mean[i], mus[set][i], 1e-12, 'mean');
      for (let j = 0; j < 3; j++) near(st.cov[i * 3 + j], i === j ? sds[set][i] ** 2 : 0, 1e-12, `cov[${i}][${j}]`);
    }
  }
  let want = 0;
  for (let d = 0; d < 3; d++) want += (mus[0][d] - mus[1][d]) ** 2 + (sds[0][d] - sds[1][d]) ** 2;
  near(frechetDistance(rows[0], rows[1], 3), want, 1e-9, '3-D diagonal FD');
});

test('FD of identical sets is 0; FD is symmetric; differing sets are far apart', () => {
  const rng = new Rng(3);
  const dim = 16;
  const a = new Float64Array(300 * dim).map(() => rng.uniform());
  // Correlated features: b = a mixed through a fixed random matrix plus an offset.
  const mix = new Float64Array(dim * dim).map(() => rng.uniform() - 0.3);
  const b = new Float64Array(500 * dim);
  for (let r = 0; r < 500; r++)
    for (let j = 0; j < dim; j++) {
      let s = 0.2;
      for (let k = 0; k < dim; k++) s += a[(r % 300) * dim + k] * mix[k * dim + j] * (r >= 300 ? 1.1 : 1);
      b[r * dim + j] = s;
    }
  near(frechetDistance(a, a, dim), 0, 1e-6, 'FD(a, a)');
  near(frechetDistance(b, Float64Array.from(b), dim), 0, 1e-6, 'FD(b, copy of b)');
  const ab = frechetDistance(a, b, dim);
  const ba = frechetDistance(b, a, dim);
  assert.ok(ab > 1, `FD(a, b) = ${ab} should be clearly positive`);
  near(ab, ba, 1e-9 * ab, 'symmetry');
});

test('FD in 2-D with non-commuting covariances matches the closed form', () => {
  // For 2x2, the eigenvalues l1, l2 of S1 S2 are >= 0 and Tr((S1 S2)^1/2) = sqrt(l1) + sqrt(l2)
  // = sqrt(l1 + l2 + 2 sqrt(l1 l2)) = sqrt(Tr(S1 S2) + 2 sqrt(det S1 det S2)).
  const rng = new Rng(5);
  const make = (n: number, a: number[], off: number[]) => {
    const out = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      const u = rng.uniform() - 0.5;
      const v = rng.uniform() - 0.5;
      out[2 * i] = off[0] + a[0] * u + a[1] * v;
      out[2 * i + 1] = off[1] + a[2] * u + a[3] * v;
    }
    return out;
  };
  const x = make(200, [1, 0.8, 0.2, 0.5], [0, 1]);
  const y = make(300, [0.3, -1, 2, 0.1], [2, -1]);
  const p = gaussianStats(x, 2);
  const q = gaussianStats(y, 2);
  const [a, b, c, d] = p.cov; // S1 = [[a, b], [c, d]], c = b
  const [e, f, g, h] = q.cov;
  const trProd = a * e + b * g + c * f + d * h;
  const det1 = a * d - b * c;
  const det2 = e * h - f * g;
  const trSqrt = Math.sqrt(trProd + 2 * Math.sqrt(det1 * det2));
  const want = (p.mean[0] - q.mean[0]) ** 2 + (p.mean[1] - q.mean[1]) ** 2 + a + d + e + h - 2 * trSqrt;
  near(frechetDistance(x, y, 2), want, 1e-10, '2-D FD');
});

test('frechetDistance rejects mismatched input', () => {
  assert.throws(() => frechetDistance(new Float64Array(10), new Float64Array(10), 3), RangeError);
  assert.throws(() => frechetDistance(new Float64Array(3), new Float64Array(6), 3), SemiganError); // 1 row
});

test('loadFeatureNet: unknown dataset is a SemiganError naming the available nets', () => {
  assert.throws(
    () => loadFeatureNet('cifar10'),
    (e: unknown) => e instanceof SemiganError && /cifar10/.test(e.message) && /mnist/.test(e.message),
  );
  assert.throws(() => loadFeatureNet('../package'), SemiganError);
});

test('the committed MNIST feature net classifies real test images; real halves are far closer than noise', () => {
  const net = loadFeatureNet('mnist');
  assert.equal(net.meta.dataset, 'mnist');
  assert.equal(net.meta.featureDim, 64);
  const { test: t } = loadBuiltin('mnist');
  const n = 1000;
  const pred = featureNetPredict(net, allRows(t.x).subarray(0, n * 784), n);
  let correct = 0;
  for (let i = 0; i < n; i++) if (pred[i] === t.y[i]) correct++;
  assert.ok(correct / n > 0.95, `accuracy on the first 1000 test images ${correct / n}`);

  const half = 1000;
  const f1 = featureNetFeatures(net, allRows(t.x).subarray(0, half * 784), half);
  const f2 = featureNetFeatures(net, allRows(t.x).subarray(half * 784, 2 * half * 784), half);
  const rng = new Rng(11);
  const noise = rng.fillUniform(new Float32Array(half * 784));
  const fn = featureNetFeatures(net, noise, half);
  const realReal = frechetDistance(f1, f2, 64);
  const realNoise = frechetDistance(f1, fn, 64);
  assert.ok(realReal * 20 < realNoise, `FD(real, real) = ${realReal} should be << FD(real, noise) = ${realNoise}`);
});

test('sampleQuality: real training images score near the real-vs-real floor, noise far above', () => {
  const { train } = loadBuiltin('mnist');
  const n = 1000;
  const real = sampleQuality('mnist', allRows(train.x).subarray(0, n * 784), n);
  const noise = sampleQuality('mnist', new Rng(2).fillUniform(new Float32Array(n * 784)), n);
  assert.equal(real.realVsRealFd, noise.realVsRealFd); // same floor for the same n
  assert.ok(real.realVsRealFd > 0 && real.fd < 3 * real.realVsRealFd, `real train images: ${JSON.stringify(real)}`);
  assert.ok(noise.fd > 50 * real.realVsRealFd, `noise: ${JSON.stringify(noise)}`);
  assert.throws(() => sampleQuality('mnist', new Float32Array(10 * 784), 9), SemiganError);
  assert.throws(() => sampleQuality('mnist', new Float32Array(784 * 2).fill(NaN), 2), SemiganError);
});
