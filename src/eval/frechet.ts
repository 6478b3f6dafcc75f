/**
 * Fréchet distance between two sets of feature vectors, each summarized by a Gaussian (mean,
 * covariance) — the formula behind FID (Heusel et al. 2017):
 *
 *   FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})
 *
 * Everything in float64 on plain arrays (no tf). Tr((S1 S2)^{1/2}) is computed as the sum of the
 * square roots of the eigenvalues of sqrt(S1) S2 sqrt(S1): that matrix is symmetric positive
 * semi-definite and similar to S1 S2 (same eigenvalues), so a symmetric eigensolver (cyclic Jacobi)
 * gives them stably, without the complex parts a general matrix square root (scipy's sqrtm) can
 * produce from rounding.
 */
import { dataError } from '../errors.js';

export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Row-major [dim, dim]; column j is the unit eigenvector of values[j]. */
  vectors: Float64Array;
}

/**
 * Eigendecomposition of a symmetric row-major [dim, dim] matrix by cyclic Jacobi rotations
 * (Golub & Van Loan, Alg. 8.5.3, with the numerically stable rotation of Numerical Recipes).
 * Only the upper triangle's values matter if `a` is not exactly symmetric (it is symmetrized first).
 * Converges quadratically; 64x64 takes ~8 sweeps, a few ms.
 */
export function jacobiEigen(a: ArrayLike<number>, dim: number, maxSweeps = 100): SymmetricEigen {
  if (!Number.isInteger(dim) || dim < 1)
    throw new RangeError(`jacobiEigen: dim must be a positive integer, got ${dim}`);
  if (a.length !== dim * dim)
    throw new RangeError(`jacobiEigen: expected ${dim * dim} values for ${dim}x${dim}, got ${a.length}`);
  const n = dim;
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) m[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
  }
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;

  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += m[i] * m[i];
  if (!Number.isFinite(scale)) throw new RangeError('jacobiEigen: matrix has non-finite entries');
  const tol = 1e-30 * scale; // squared off-diagonal norm at which the matrix is diagonal to rounding

  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] * m[p * n + q];
    if (off <= tol) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (apq === 0) continue;
        const app = m[p * n + p];
        const aqq = m[q * n + q];
        // Rotation angle: tan(theta) = t zeroes m[p][q]; the smaller root keeps |theta| <= pi/4.
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // m <- J^T m J, touching rows/columns p and q only.
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p];
          const mkq = m[k * n + q];
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k];
          const mqk = m[q * n + k];
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        m[p * n + q] = 0;
        m[q * n + p] = 0;
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }

  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => m[i * n + i] - m[j * n + j]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = m[src * n + src];
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors };
}

/** Principal square root of a symmetric PSD matrix (negative rounding-noise eigenvalues -> 0). */
export function sqrtPsd(a: ArrayLike<number>, dim: number): Float64Array {
  const { values, vectors } = jacobiEigen(a, dim);
  const n = dim;
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const r = Math.sqrt(Math.max(values[k], 0));
    if (r === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = vectors[i * n + k] * r;
      for (let j = 0; j < n; j++) out[i * n + j] += vik * vectors[j * n + k];
    }
  }
  return out;
}

export interface GaussianStats {
  dim: number;
  /** Number of feature vectors the statistics come from. */
  n: number;
  mean: Float64Array;
  /** Row-major [dim, dim], unbiased (divides by n - 1, like numpy.cov / the reference FID code). */
  cov: Float64Array;
}

/** Mean and unbiased covariance of row-major feature vectors [n, dim]; n >= 2. */
export function gaussianStats(feats: ArrayLike<number>, dim: number): GaussianStats {
  if (!Number.isInteger(dim) || dim < 1)
    throw new RangeError(`gaussianStats: dim must be a positive integer, got ${dim}`);
  if (feats.length % dim !== 0)
    throw new RangeError(`gaussianStats: length ${feats.length} is not a multiple of dim = ${dim}`);
  const n = feats.length / dim;
  if (n < 2) throw dataError(`Fréchet distance: need at least 2 feature vectors per set for a covariance, got ${n}`);
  const mean = new Float64Array(dim);
  for (let r = 0; r < n; r++) for (let j = 0; j < dim; j++) mean[j] += feats[r * dim + j];
  for (let j = 0; j < dim; j++) mean[j] /= n;
  const cov = new Float64Array(dim * dim);
  const d = new Float64Array(dim);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < dim; j++) d[j] = feats[r * dim + j] - mean[j];
    for (let i = 0; i < dim; i++) {
      const di = d[i];
      if (di === 0) continue;
      for (let j = i; j < dim; j++) cov[i * dim + j] += di * d[j];
    }
  }
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      const c = cov[i * dim + j] / (n - 1);
      cov[i * dim + j] = c;
      cov[j * dim + i] = c;
    }
  }
  return { dim, n, mean, cov };
}

/** Fréchet distance between two Gaussians given by their statistics. */
export function frechetDistanceFromStats(a: GaussianStats, b: GaussianStats): number {
  if (a.dim !== b.dim) throw new RangeError(`frechetDistance: dims differ (${a.dim} vs ${b.dim})`);
  const n = a.dim;
  let meanTerm = 0;
  for (let j = 0; j < n; j++) meanTerm += (a.mean[j] - b.mean[j]) ** 2;
  let trA = 0;
  let trB = 0;
  for (let i = 0; i < n; i++) {
    trA += a.cov[i * n + i];
    trB += b.cov[i * n + i];
  }
  // M = sqrt(S1) S2 sqrt(S1): symmetric PSD, eigenvalues = those of S1 S2.
  const r = sqrtPsd(a.cov, n);
  const t = matmul(r, b.cov, n);
  const mat = matmul(t, r, n);
  const { values } = jacobiEigen(mat, n);
  let trSqrt = 0;
  for (const ev of values) trSqrt += Math.sqrt(Math.max(ev, 0));
  // Rounding can leave a tiny negative total for (near-)identical sets; a distance is >= 0.
  return Math.max(meanTerm + trA + trB - 2 * trSqrt, 0);
}

/** Fréchet distance between two sets of row-major feature vectors [n1, dim] and [n2, dim]. */
export function frechetDistance(feats1: ArrayLike<number>, feats2: ArrayLike<number>, dim: number): number {
  return frechetDistanceFromStats(gaussianStats(feats1, dim), gaussianStats(feats2, dim));
}

function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += aik * b[k * n + j];
    }
  }
  return out;
}
