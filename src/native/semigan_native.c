// Native kernels on tensors that live in the tfjs wasm backend's heap:
//  - matmul: OpenBLAS sgemm. The wasm backend (XNNPACK) runs one thread in Node; OpenBLAS uses
//    every core with native AVX kernels.
//  - sum_rows: sums over leading axes without tfjs's transpose, in tfjs's order (bit-identical).
//  - fill_normal: the seeded normal sampler (src/rng.ts) but for its tail, bit-identical.
//  - adam, ema: the optimizer and weight-average updates in one pass, in place, instead of ~13
//    and 3 tfjs kernel calls per parameter. Same float32 operations in the same order as the tfjs
//    code they replace (src/train/adam.ts, ema.ts), each correctly rounded (no FMA contraction,
//    no fast-math), so the results are bit-identical.
// The caller passes the heap's ArrayBuffer and byte offsets, so no tensor is copied in or out.
// Everything here is synchronous: the heap cannot grow or move while it runs, because JavaScript
// is blocked in this call.
#include <node_api.h>
#include <cblas.h>
#include "semigan_conv.h"
#include <stdbool.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                               \
  do {                                                                            \
    if ((call) != napi_ok) {                                                      \
      napi_throw_error(env, NULL, "semigan_native: N-API call failed: " #call); \
      return NULL;                                                                \
    }                                                                             \
  } while (0)

enum { ARG_HEAP, ARG_A, ARG_B, ARG_OUT, ARG_BATCH_A, ARG_BATCH_B, ARG_M, ARG_N, ARG_K, ARG_TA, ARG_TB,
       ARG_BIAS, ARG_ACT, ARG_ALPHA, ARG_THREADS, N_ARGS };
enum { ACT_LINEAR = 0, ACT_RELU = 1, ACT_LEAKY_RELU = 2, ACT_SIGMOID = 3 };

static bool in_heap(int64_t off, int64_t floats, size_t heap_bytes) {
  return off >= 0 && floats >= 0 && (uint64_t)(off + floats * 4) <= heap_bytes && off % 4 == 0;
}

// The thread count OpenBLAS was last set to (setting it costs little, but only when it changes).
static int current_threads = 0;

static void use_threads(int threads) {
  if (threads != current_threads) {
    openblas_set_num_threads(threads);
    current_threads = threads;
  }
}

// matmul(heap, aOff, bOff, outOff, batchA, batchB, m, n, k, transposeA, transposeB, biasOff, act, alpha, threads)
// a: [batchA, m, k] ([batchA, k, m] when transposed), b: [batchB, k, n] ([batchB, n, k] when
// transposed), out: [max(batchA, batchB), m, n]; a batch of 1 broadcasts. Offsets are bytes into
// the heap. Epilogue: biasOff (-1: none) points at n floats added to every row, then act.
static napi_value matmul(napi_env env, napi_callback_info info) {
  size_t argc = N_ARGS;
  napi_value argv[N_ARGS];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != N_ARGS) {
    napi_throw_type_error(env, NULL, "semigan_native: expected 15 arguments");
    return NULL;
  }
  void *heap = NULL;
  size_t heap_bytes = 0;
  CHECK(napi_get_arraybuffer_info(env, argv[ARG_HEAP], &heap, &heap_bytes));
  int64_t a_off, b_off, out_off, batch_a, batch_b, m, n, k, bias_off, act;
  CHECK(napi_get_value_int64(env, argv[ARG_A], &a_off));
  CHECK(napi_get_value_int64(env, argv[ARG_B], &b_off));
  CHECK(napi_get_value_int64(env, argv[ARG_OUT], &out_off));
  CHECK(napi_get_value_int64(env, argv[ARG_BATCH_A], &batch_a));
  CHECK(napi_get_value_int64(env, argv[ARG_BATCH_B], &batch_b));
  CHECK(napi_get_value_int64(env, argv[ARG_M], &m));
  CHECK(napi_get_value_int64(env, argv[ARG_N], &n));
  CHECK(napi_get_value_int64(env, argv[ARG_K], &k));
  CHECK(napi_get_value_int64(env, argv[ARG_BIAS], &bias_off));
  CHECK(napi_get_value_int64(env, argv[ARG_ACT], &act));
  bool ta, tb;
  CHECK(napi_get_value_bool(env, argv[ARG_TA], &ta));
  CHECK(napi_get_value_bool(env, argv[ARG_TB], &tb));
  double alpha;
  CHECK(napi_get_value_double(env, argv[ARG_ALPHA], &alpha));
  int32_t threads;
  CHECK(napi_get_value_int32(env, argv[ARG_THREADS], &threads));
  if (threads < 1) threads = 1;

  const int64_t batch = batch_a > batch_b ? batch_a : batch_b;
  const bool shapes_ok = m > 0 && n > 0 && k > 0 && batch_a > 0 && batch_b > 0 &&
                         (batch_a == batch || batch_a == 1) && (batch_b == batch || batch_b == 1) &&
                         m < INT32_MAX && n < INT32_MAX && k < INT32_MAX;
  if (!shapes_ok || !in_heap(a_off, batch_a * m * k, heap_bytes) || !in_heap(b_off, batch_b * k * n, heap_bytes) ||
      !in_heap(out_off, batch * m * n, heap_bytes) || (bias_off != -1 && !in_heap(bias_off, n, heap_bytes)) ||
      act < ACT_LINEAR || act > ACT_SIGMOID) {
    napi_throw_range_error(env, NULL, "semigan_native: operand outside the heap or bad shape");
    return NULL;
  }
  use_threads(threads);
  char *base = (char *)heap;
  const float *bias = bias_off == -1 ? NULL : (const float *)(base + bias_off);
  for (int64_t i = 0; i < batch; i++) {
    const float *a = (const float *)(base + a_off) + (batch_a == 1 ? 0 : i * m * k);
    const float *b = (const float *)(base + b_off) + (batch_b == 1 ? 0 : i * k * n);
    float *c = (float *)(base + out_off) + i * m * n;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)k, 1.0f, a, ta ? (int)m : (int)k, b, tb ? (int)k : (int)n, 0.0f, c, (int)n);
    if (bias == NULL && act == ACT_LINEAR) continue;
    const float slope = (float)alpha;
    for (int64_t r = 0; r < m; r++) {
      float *row = c + r * n;
      for (int64_t j = 0; j < n; j++) {
        float x = bias ? row[j] + bias[j] : row[j];
        if (act == ACT_RELU) x = x > 0.0f ? x : 0.0f;
        else if (act == ACT_LEAKY_RELU) x = x > 0.0f ? x : x * slope;
        else if (act == ACT_SIGMOID) x = 1.0f / (1.0f + expf(-x));
        row[j] = x;
      }
    }
  }
  return NULL;
}

// adam(heap, pOff, mOff, vOff, gOff, outOff, n, beta1, beta2, lrOverC1, c2, eps), m and v in place,
// the new parameter into out (a fresh tensor: the old one may be cached by XNNPACK as packed weights):
//   m = m*beta1 + g*(1-beta1); v = v*beta2 + (g*g)*(1-beta2); out = p - (m*lrOverC1) / sqrt(v/c2 + eps)
// Every scalar is rounded to float32 first, as tfjs does when it makes a scalar tensor of it.
static napi_value adam(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 12) {
    napi_throw_type_error(env, NULL, "semigan_native.adam: expected 12 arguments");
    return NULL;
  }
  void *heap = NULL;
  size_t heap_bytes = 0;
  CHECK(napi_get_arraybuffer_info(env, argv[0], &heap, &heap_bytes));
  int64_t off[5], n;
  for (int i = 0; i < 5; i++) CHECK(napi_get_value_int64(env, argv[1 + i], &off[i]));
  CHECK(napi_get_value_int64(env, argv[6], &n));
  double s[5];
  for (int i = 0; i < 5; i++) CHECK(napi_get_value_double(env, argv[7 + i], &s[i]));
  for (int i = 0; i < 5; i++) {
    if (!in_heap(off[i], n, heap_bytes)) {
      napi_throw_range_error(env, NULL, "semigan_native.adam: operand outside the heap");
      return NULL;
    }
  }
  char *base = (char *)heap;
  const float *p = (const float *)(base + off[0]), *g = (const float *)(base + off[3]);
  float *m = (float *)(base + off[1]), *v = (float *)(base + off[2]), *out = (float *)(base + off[4]);
  const float b1 = (float)s[0], omb1 = (float)(1 - s[0]), b2 = (float)s[1], omb2 = (float)(1 - s[1]);
  const float step = (float)s[2], c2 = (float)s[3], eps = (float)s[4];
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * b1 + gi * omb1;
    const float vi = v[i] * b2 + (gi * gi) * omb2;
    m[i] = mi;
    v[i] = vi;
    out[i] = p[i] - (mi * step) / sqrtf(vi / c2 + eps);
  }
  return NULL;
}

// ema(heap, sOff, pOff, n, decay), in place on s: s = s*decay + p*(1-decay)
static napi_value ema(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5) {
    napi_throw_type_error(env, NULL, "semigan_native.ema: expected 5 arguments");
    return NULL;
  }
  void *heap = NULL;
  size_t heap_bytes = 0;
  CHECK(napi_get_arraybuffer_info(env, argv[0], &heap, &heap_bytes));
  int64_t s_off, p_off, n;
  double decay;
  CHECK(napi_get_value_int64(env, argv[1], &s_off));
  CHECK(napi_get_value_int64(env, argv[2], &p_off));
  CHECK(napi_get_value_int64(env, argv[3], &n));
  CHECK(napi_get_value_double(env, argv[4], &decay));
  if (!in_heap(s_off, n, heap_bytes) || !in_heap(p_off, n, heap_bytes)) {
    napi_throw_range_error(env, NULL, "semigan_native.ema: operand outside the heap");
    return NULL;
  }
  float *sh = (float *)((char *)heap + s_off);
  const float *p = (const float *)((char *)heap + p_off);
  const float d = (float)decay, omd = (float)(1 - decay);
  for (int64_t i = 0; i < n; i++) sh[i] = sh[i] * d + p[i] * omd;
  return NULL;
}

// sum_rows(heap, xOff, outOff, rows, cols): out[c] = x[0][c] + x[1][c] + ... in row order, a
// float32 accumulator per column, which is the order tfjs's wasm Sum uses after it transposes the
// reduced axes innermost; here without the transpose.
static napi_value sum_rows(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5) {
    napi_throw_type_error(env, NULL, "semigan_native.sumRows: expected 5 arguments");
    return NULL;
  }
  void *heap = NULL;
  size_t heap_bytes = 0;
  CHECK(napi_get_arraybuffer_info(env, argv[0], &heap, &heap_bytes));
  int64_t x_off, out_off, rows, cols;
  CHECK(napi_get_value_int64(env, argv[1], &x_off));
  CHECK(napi_get_value_int64(env, argv[2], &out_off));
  CHECK(napi_get_value_int64(env, argv[3], &rows));
  CHECK(napi_get_value_int64(env, argv[4], &cols));
  if (rows < 1 || cols < 1 || !in_heap(x_off, rows * cols, heap_bytes) || !in_heap(out_off, cols, heap_bytes)) {
    napi_throw_range_error(env, NULL, "semigan_native.sumRows: operand outside the heap or bad shape");
    return NULL;
  }
  const float *x = (const float *)((char *)heap + x_off);
  float *out = (float *)((char *)heap + out_off);
  for (int64_t c = 0; c < cols; c++) out[c] = 0.0f;
  for (int64_t r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    for (int64_t c = 0; c < cols; c++) out[c] += row[c];
  }
  return NULL;
}

// Reads (heap, `want` int64s, then `doubles` doubles) for the layer kernels below; false after
// throwing `usage`.
static bool layer_args(napi_env env, napi_callback_info info, size_t want, size_t doubles, const char *usage,
                       char **base, size_t *heap_bytes, int64_t *ints, double *reals) {
  napi_value argv[16];
  size_t argc = 16;
  void *heap = NULL;
  bool ok = want + doubles <= 15 && napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok &&
            argc == want + doubles + 1 && napi_get_arraybuffer_info(env, argv[0], &heap, heap_bytes) == napi_ok;
  for (size_t i = 0; ok && i < want; i++) ok = napi_get_value_int64(env, argv[1 + i], &ints[i]) == napi_ok;
  for (size_t i = 0; ok && i < doubles; i++) ok = napi_get_value_double(env, argv[1 + want + i], &reals[i]) == napi_ok;
  if (!ok) napi_throw_type_error(env, NULL, usage);
  *base = (char *)heap;
  return ok;
}

static napi_value out_of_heap(napi_env env, const char *name) {
  char text[160];
  snprintf(text, sizeof text, "semigan_native.%s: operand outside the heap or bad shape", name);
  napi_throw_range_error(env, NULL, text);
  return NULL;
}

#define F32(off) ((float *)(base + (off)))

// weight_norm(heap, vOff, gOff, outOff, rows, cols): W = v * (g / sqrt(sum_rows(v * v))) per
// column, the float32 operations of nn/weight_norm.ts's tfjs ops in their order (bit-identical).
static napi_value weight_norm(napi_env env, napi_callback_info info) {
  char *base;
  size_t heap_bytes;
  int64_t a[5];
  if (!layer_args(env, info, 5, 0, "semigan_native.weightNorm: expected (heap, vOff, gOff, outOff, rows, cols)", &base,
                  &heap_bytes, a, NULL))
    return NULL;
  const int64_t rows = a[3], cols = a[4];
  if (rows < 1 || cols < 1 || !in_heap(a[0], rows * cols, heap_bytes) || !in_heap(a[1], cols, heap_bytes) ||
      !in_heap(a[2], rows * cols, heap_bytes))
    return out_of_heap(env, "weightNorm");
  const float *v = F32(a[0]), *g = F32(a[1]);
  float *w = F32(a[2]);
  float *scale = calloc((size_t)cols, sizeof(float));
  if (!scale) return out_of_heap(env, "weightNorm (out of memory)");
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) scale[c] += v[r * cols + c] * v[r * cols + c];
  for (int64_t c = 0; c < cols; c++) scale[c] = g[c] / sqrtf(scale[c]);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) w[r * cols + c] = v[r * cols + c] * scale[c];
  free(scale);
  return NULL;
}

// weight_norm_grad(heap, dwOff, vOff, gOff, dvOff, dgOff, rows, cols): the gradients of
// weight_norm as tfjs's autodiff computes them for v.mul(g.div(v.square().sum(0).sqrt())),
// operation by operation (bit-identical):
//   n = sum_rows(v*v), r = sqrt(n), c = g/r, dc = sum_rows(dw*v), dg = dc/r,
//   dn = -((dc*g)/(r*r)) / (r*2), dv = dw*c + dn*(v*2)
static napi_value weight_norm_grad(napi_env env, napi_callback_info info) {
  char *base;
  size_t heap_bytes;
  int64_t a[7];
  if (!layer_args(env, info, 7, 0, "semigan_native.weightNormGrad: expected (heap, dwOff, vOff, gOff, dvOff, dgOff, rows, cols)",
                  &base, &heap_bytes, a, NULL))
    return NULL;
  const int64_t rows = a[5], cols = a[6];
  if (rows < 1 || cols < 1 || !in_heap(a[0], rows * cols, heap_bytes) || !in_heap(a[1], rows * cols, heap_bytes) ||
      !in_heap(a[2], cols, heap_bytes) || !in_heap(a[3], rows * cols, heap_bytes) || !in_heap(a[4], cols, heap_bytes))
    return out_of_heap(env, "weightNormGrad");
  const float *dw = F32(a[0]), *v = F32(a[1]), *g = F32(a[2]);
  float *dv = F32(a[3]), *dg = F32(a[4]);
  float *n = calloc((size_t)cols * 2, sizeof(float));
  if (!n) return out_of_heap(env, "weightNormGrad (out of memory)");
  float *dc = n + cols;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      const float vi = v[r * cols + c];
      n[c] += vi * vi;
      dc[c] += dw[r * cols + c] * vi;
    }
  // n becomes the column scale c, dc becomes dn.
  for (int64_t c = 0; c < cols; c++) {
    const float r = sqrtf(n[c]);
    dg[c] = dc[c] / r;
    dc[c] = -((dc[c] * g[c]) / (r * r)) / (r * 2.0f);
    n[c] = g[c] / r;
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      const int64_t i = r * cols + c;
      dv[i] = dw[i] * n[c] + dc[c] * (v[i] * 2.0f);
    }
  free(n);
  return NULL;
}

// act_grad(heap, dyOff, yOff, dzOff, dbOff, rows, cols, act, slope): the gradient through a
// layer's activation and bias, from its output y, as tfjs's gradients compute it:
//   relu: dz = dy * (y > 0 ? 1 : 0) (dy * step);  sigmoid: dz = dy * (y * (1 - y));
//   leaky relu: dz = dy * (y > 0 ? 1 : slope) (nn/activations.ts's mask);  db = sum_rows(dz)
// linear: dz is dy (not written, yOff and dzOff -1); only db.
static napi_value act_grad(napi_env env, napi_callback_info info) {
  char *base;
  size_t heap_bytes;
  int64_t a[7];
  double slope;
  if (!layer_args(env, info, 7, 1, "semigan_native.actGrad: expected (heap, dyOff, yOff, dzOff, dbOff, rows, cols, act, slope)",
                  &base, &heap_bytes, a, &slope))
    return NULL;
  const int64_t rows = a[4], cols = a[5], act = a[6];
  const bool linear = act == ACT_LINEAR;
  const float leak = (float)slope;
  if (rows < 1 || cols < 1 || act < ACT_LINEAR || act > ACT_SIGMOID ||
      !in_heap(a[0], rows * cols, heap_bytes) || !in_heap(a[3], cols, heap_bytes) ||
      (!linear && (!in_heap(a[1], rows * cols, heap_bytes) || !in_heap(a[2], rows * cols, heap_bytes))))
    return out_of_heap(env, "actGrad");
  const float *restrict dy = F32(a[0]);
  float *restrict db = F32(a[3]);
  for (int64_t c = 0; c < cols; c++) db[c] = 0.0f;
  if (linear) {
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) db[c] += dy[r * cols + c];
    return NULL;
  }
  const float *restrict y = F32(a[1]);
  float *restrict dz = F32(a[2]);
  for (int64_t r = 0; r < rows; r++) {
    const float *restrict dyr = dy + r * cols, *restrict yr = y + r * cols;
    float *restrict dzr = dz + r * cols;
    if (act == ACT_RELU)
      for (int64_t c = 0; c < cols; c++) dzr[c] = dyr[c] * (yr[c] > 0.0f ? 1.0f : 0.0f);
    else if (act == ACT_LEAKY_RELU)
      for (int64_t c = 0; c < cols; c++) dzr[c] = dyr[c] * (yr[c] > 0.0f ? 1.0f : leak);
    else
      for (int64_t c = 0; c < cols; c++) dzr[c] = dyr[c] * (yr[c] * (1.0f - yr[c]));
    for (int64_t c = 0; c < cols; c++) db[c] += dzr[c];
  }
  return NULL;
}

// log1p(e) for e in [0, 1] from logf (half the time of log1pf here, within 2 ulps): with
// u = 1 + e rounded, log(u) * e / (u - 1) cancels u's rounding error (Goldberg 1991, thm. 4).
static inline float log1p_unit(float e) {
  const float u = 1.0f + e;
  return u == 1.0f ? e : logf(u) * (e / (u - 1.0f));
}

// Column mean and 1/sqrt(variance + eps) of h [rows, cols] (double sums), for bn_softplus.
static void column_stats(const float *h, int64_t rows, int64_t cols, double eps, double *mean, double *inv) {
  for (int64_t c = 0; c < cols; c++) mean[c] = inv[c] = 0.0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) mean[c] += h[r * cols + c];
  for (int64_t c = 0; c < cols; c++) mean[c] /= (double)rows;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      const double d = h[r * cols + c] - mean[c];
      inv[c] += d * d;
    }
  for (int64_t c = 0; c < cols; c++) inv[c] = 1.0 / sqrt(inv[c] / (double)rows + eps);
}

// bn_softplus(heap, hOff, shiftOff, outOff, rows, cols, eps): G's hidden activation,
// softplus((h - mean) / sqrt(var + eps) + shift) with the batch's column statistics.
// softplus(z) = max(z, 0) + log1p(exp(-|z|)).
static napi_value bn_softplus(napi_env env, napi_callback_info info) {
  char *base;
  size_t heap_bytes;
  int64_t a[5];
  double eps;
  if (!layer_args(env, info, 5, 1, "semigan_native.bnSoftplus: expected (heap, hOff, shiftOff, outOff, rows, cols, eps)", &base,
                  &heap_bytes, a, &eps))
    return NULL;
  const int64_t rows = a[3], cols = a[4];
  if (rows < 1 || cols < 1 || !in_heap(a[0], rows * cols, heap_bytes) || !in_heap(a[1], cols, heap_bytes) ||
      !in_heap(a[2], rows * cols, heap_bytes))
    return out_of_heap(env, "bnSoftplus");
  const float *h = F32(a[0]), *shift = F32(a[1]);
  float *out = F32(a[2]);
  double *mean = malloc(sizeof(double) * 2 * (size_t)cols);
  if (!mean) return out_of_heap(env, "bnSoftplus (out of memory)");
  double *inv = mean + cols;
  column_stats(h, rows, cols, eps, mean, inv);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      const float z = (float)((h[r * cols + c] - mean[c]) * inv[c]) + shift[c];
      out[r * cols + c] = (z > 0.0f ? z : 0.0f) + log1p_unit(expf(-fabsf(z)));
    }
  free(mean);
  return NULL;
}

// bn_softplus_grad(heap, dyOff, hOff, shiftOff, dhOff, dshiftOff, rows, cols, eps):
// dz = dy * sigmoid(z); dshift = sum_rows(dz); with x = (h - mean) * inv,
// dh = inv * (dz - mean_rows(dz) - x * mean_rows(dz * x))   (batch norm through its statistics)
static napi_value bn_softplus_grad(napi_env env, napi_callback_info info) {
  char *base;
  size_t heap_bytes;
  int64_t a[7];
  double eps;
  if (!layer_args(env, info, 7, 1, "semigan_native.bnSoftplusGrad: expected (heap, dyOff, hOff, shiftOff, dhOff, dshiftOff, rows, cols, eps)",
                  &base, &heap_bytes, a, &eps))
    return NULL;
  const int64_t rows = a[5], cols = a[6];
  if (rows < 1 || cols < 1 || !in_heap(a[0], rows * cols, heap_bytes) || !in_heap(a[1], rows * cols, heap_bytes) ||
      !in_heap(a[2], cols, heap_bytes) || !in_heap(a[3], rows * cols, heap_bytes) || !in_heap(a[4], cols, heap_bytes))
    return out_of_heap(env, "bnSoftplusGrad");
  const float *dy = F32(a[0]), *h = F32(a[1]), *shift = F32(a[2]);
  float *dh = F32(a[3]), *dshift = F32(a[4]);
  double *mean = malloc(sizeof(double) * 4 * (size_t)cols);
  if (!mean) return out_of_heap(env, "bnSoftplusGrad (out of memory)");
  double *inv = mean + cols, *sum_dz = inv + cols, *sum_dzx = sum_dz + cols;
  column_stats(h, rows, cols, eps, mean, inv);
  for (int64_t c = 0; c < cols; c++) sum_dz[c] = sum_dzx[c] = 0.0;
  // dz goes into dh first; dh is rewritten in place below.
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      const int64_t i = r * cols + c;
      const double x = (h[i] - mean[c]) * inv[c];
      const float z = (float)x + shift[c];
      const float dz = dy[i] / (1.0f + expf(-z));
      dh[i] = dz;
      sum_dz[c] += dz;
      sum_dzx[c] += dz * x;
    }
  for (int64_t c = 0; c < cols; c++) {
    dshift[c] = (float)sum_dz[c];
    sum_dz[c] /= (double)rows;
    sum_dzx[c] /= (double)rows;
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      const int64_t i = r * cols + c;
      const double x = (h[i] - mean[c]) * inv[c];
      dh[i] = (float)(inv[c] * (dh[i] - sum_dz[c] - x * sum_dzx[c]));
    }
  free(mean);
  return NULL;
}

static inline double softplus_d(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

// The softmax of the k logits l into q; returns their log-sum-exp.
static double softmax_row(const float *l, int64_t k, double *q) {
  double m = l[0], s = 0;
  for (int64_t j = 1; j < k; j++) m = l[j] > m ? l[j] : m;
  for (int64_t j = 0; j < k; j++) s += q[j] = exp(l[j] - m);
  for (int64_t j = 0; j < k; j++) q[j] /= s;
  return m + log(s);
}

// d_losses(heap, logitsOff, labelsOff, outOff, gradOff, rows, k, bs, nUnl, nFake, second,
//          realTarget, unlabeledWeight, entropy, consistency, dTotal)
// The discriminator's losses from its logits [rows, k] (bs labeled, nUnl unlabeled, nFake
// generated, then, when second >= 0, nUnl more at row `second`: the unlabeled rows' second look)
// in double, as train/losses.ts defines them:
//   lab  = mean over labeled rows of lse - logit[label]
//   unl  = -realTarget/2 mean(lse(unl)) + 1/2 mean(softplus(lse(unl))) + 1/2 mean(softplus(lse(fake)))
//   ent  = mean over unlabeled rows of -sum p log p;  cons = mean over unl x k of (p - p2)^2
//   total = lab + unlabeledWeight unl + entropy ent + consistency cons
// out (gradOff -1): [total, lab, unl, labeled error rate]. Else grad = dTotal * d total / d logits.
static napi_value d_losses(napi_env env, napi_callback_info info) {
  char *base;
  size_t heap_bytes;
  int64_t a[10];
  double r[5];
  if (!layer_args(env, info, 10, 5,
                  "semigan_native.dLosses: expected (heap, logitsOff, labelsOff, outOff, gradOff, rows, k, bs, nUnl, nFake, second, "
                  "realTarget, unlabeledWeight, entropy, consistency, dTotal)",
                  &base, &heap_bytes, a, r))
    return NULL;
  const int64_t rows = a[4], k = a[5], bs = a[6], n_unl = a[7], n_fake = a[8], second = a[9];
  const bool grad = a[3] != -1;
  if (k < 1 || bs < 1 || n_unl < 0 || n_fake < 0 || bs + n_unl + n_fake > rows ||
      (second >= 0 && (second < bs + n_unl + n_fake || second + n_unl > rows)) ||
      !in_heap(a[0], rows * k, heap_bytes) || !in_heap(a[1], bs, heap_bytes) || (!grad && !in_heap(a[2], 4, heap_bytes)) ||
      (grad && !in_heap(a[3], rows * k, heap_bytes)))
    return out_of_heap(env, "dLosses");
  const float *logits = F32(a[0]);
  const int32_t *labels = (const int32_t *)(base + a[1]);
  const double real_target = r[0], unl_w = r[1], ent_w = r[2], cons_w = r[3], d_total = r[4];
  float *g = grad ? F32(a[3]) : NULL;
  if (g)
    for (int64_t i = 0; i < rows * k; i++) g[i] = 0.0f;
  double *p = malloc(sizeof(double) * 2 * (size_t)k);
  if (!p) return out_of_heap(env, "dLosses (out of memory)");
  double *p2 = p + k;
  double lab = 0, unl = 0, ent = 0, cons = 0, errors = 0;
  for (int64_t i = 0; i < bs; i++) {
    const double lse = softmax_row(logits + i * k, k, p);
    const int32_t y = labels[i];
    if (y < 0 || y >= k) {
      free(p);
      return out_of_heap(env, "dLosses (a label outside the classes)");
    }
    lab += lse - logits[i * k + y];
    int64_t best = 0;
    for (int64_t j = 1; j < k; j++)
      if (logits[i * k + j] > logits[i * k + best]) best = j;
    errors += best != y;
    if (g)
      for (int64_t j = 0; j < k; j++) g[i * k + j] = (float)(d_total * (p[j] - (j == y)) / bs);
  }
  for (int64_t t = 0; t < n_unl + n_fake; t++) {
    const int64_t i = bs + t;
    const bool fake = t >= n_unl;
    const double n = fake ? n_fake : n_unl;
    const double lse = softmax_row(logits + i * k, k, p);
    unl += (fake ? 0 : -0.5 * real_target * lse) / n + 0.5 * softplus_d(lse) / n;
    double coef = 0.5 / (1 + exp(-lse)) / n - (fake ? 0 : 0.5 * real_target / n); // d unl / d lse
    double h = 0;
    if (!fake && ent_w != 0) {
      for (int64_t j = 0; j < k; j++) h -= p[j] > 0 ? p[j] * log(p[j]) : 0;
      ent += h / n;
    }
    double dot = 0;
    if (!fake && second >= 0) {
      softmax_row(logits + (second + t) * k, k, p2);
      for (int64_t j = 0; j < k; j++) cons += (p[j] - p2[j]) * (p[j] - p2[j]);
    }
    if (!g) continue;
    const double gc = 2.0 * cons_w / ((double)n_unl * k); // d cons / d (p - p2), per element
    if (!fake && second >= 0) {
      double dot2 = 0;
      for (int64_t j = 0; j < k; j++) {
        dot += gc * (p[j] - p2[j]) * p[j];
        dot2 += gc * (p[j] - p2[j]) * p2[j];
      }
      for (int64_t j = 0; j < k; j++)
        g[(second + t) * k + j] = (float)(d_total * p2[j] * (-gc * (p[j] - p2[j]) + dot2));
    }
    for (int64_t j = 0; j < k; j++) {
      double d = unl_w * coef * p[j];
      if (!fake && ent_w != 0 && p[j] > 0) d -= ent_w / n * p[j] * (log(p[j]) + h);
      if (!fake && second >= 0) d += p[j] * (gc * (p[j] - p2[j])) - p[j] * dot;
      g[i * k + j] = (float)(d_total * d);
    }
  }
  free(p);
  if (!g) {
    float *out = F32(a[2]);
    lab /= bs;
    cons = n_unl > 0 && second >= 0 ? cons / ((double)n_unl * k) : 0;
    out[0] = (float)(lab + unl_w * unl + ent_w * ent + cons_w * cons);
    out[1] = (float)lab;
    out[2] = (float)unl;
    out[3] = (float)(errors / bs);
  }
  return NULL;
}

// add_to(heap, outOff, xOff, n): out = x + out (the noise already drawn into out).
static napi_value add_to(napi_env env, napi_callback_info info) {
  char *base;
  size_t heap_bytes;
  int64_t a[3];
  if (!layer_args(env, info, 3, 0, "semigan_native.addTo: expected (heap, outOff, xOff, n)", &base, &heap_bytes, a, NULL))
    return NULL;
  if (a[2] < 0 || !in_heap(a[0], a[2], heap_bytes) || !in_heap(a[1], a[2], heap_bytes)) return out_of_heap(env, "addTo");
  float *out = F32(a[0]);
  const float *x = F32(a[1]);
  for (int64_t i = 0; i < a[2]; i++) out[i] = x[i] + out[i];
  return NULL;
}

// The ziggurat normal sampler of src/rng.ts (sfc32 draws, 128 layers), bit-identical:
// fill_normal(out, from, state, std) fills out[from..], wedges included, until it meets a draw
// that only JavaScript can finish exactly: the tail beyond R (its value comes from Math.log) or
// a wedge test too close to call (below). It returns that index, with the draw in state[4] and
// the generator just after it, and JavaScript computes that value before calling again.
// state[0..3] is the generator, read and written back. The arithmetic is JavaScript's (double,
// one rounding to float32 at the end).
//
// The wedge test compares a uniform point with exp(-x^2/2). C's exp and V8's Math.exp may
// differ in the last bit, but both are within 1 ulp of the true value; a point farther than
// 1e-13 (relative, ~450 ulps) from C's value is on the same side of V8's, and a closer one
// (~1e-13 of wedge tests) goes to JavaScript. So ~0.1% of draws (the tail) leave native code
// instead of ~1.2% (every wedge), and each leaving costs a round trip through N-API.
static double zig_k[128], zig_w[128], zig_f[128];
static bool zig_ready = false;

static napi_value set_ziggurat(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double *tables[3] = {zig_k, zig_w, zig_f};
  for (int t = 0; t < 3; t++) {
    napi_typedarray_type type;
    size_t len;
    void *data;
    if (argc != 3 || napi_get_typedarray_info(env, argv[t], &type, &len, &data, NULL, NULL) != napi_ok || type != napi_float64_array || len != 128) {
      napi_throw_type_error(env, NULL, "semigan_native.setZiggurat: expected three Float64Arrays of 128 (k, w, f)");
      return NULL;
    }
    memcpy(tables[t], data, sizeof zig_k);
  }
  zig_ready = true;
  return NULL;
}

typedef struct {
  uint32_t a, b, c, d;
} sfc32;

static inline uint32_t sfc32_next(sfc32 *s) { // as Rng.nextUint32
  const uint32_t u = s->a + s->b + s->d;
  s->d = s->d + 1;
  s->a = s->b ^ (s->b >> 9);
  s->b = s->c + (s->c << 3);
  s->c = (s->c << 21) | (s->c >> 11);
  s->c = s->c + u;
  return u;
}

// Rng.normalSlow for a draw that missed its layer's rectangle, unless it reaches the tail or a
// wedge test too close to call: then false, and the caller hands the draw to JavaScript.
static bool normal_slow(sfc32 *s, int32_t j, int layer, double *value) {
  for (;;) {
    const double x = (double)j * zig_w[layer];
    if (layer == 0) return false;
    const double uniform = (double)sfc32_next(s) / 4294967296.0;
    const double point = zig_f[layer] + uniform * (zig_f[layer - 1] - zig_f[layer]);
    const double density = exp(-0.5 * x * x);
    if (fabs(point - density) <= 1e-13 * density) return false;
    if (point < density) {
      *value = x;
      return true;
    }
    const uint32_t u = sfc32_next(s);
    layer = (int)(u & 127);
    j = ((int32_t)u) >> 7;
    if (fabs((double)j) < zig_k[layer]) {
      *value = (double)j * zig_w[layer];
      return true;
    }
  }
}

static napi_value fill_normal(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_typedarray_type out_type, st_type;
  size_t n, st_len;
  void *out_data, *st_data;
  int64_t from;
  double std_;
  if (argc != 4 || !zig_ready || napi_get_typedarray_info(env, argv[0], &out_type, &n, &out_data, NULL, NULL) != napi_ok ||
      out_type != napi_float32_array || napi_get_value_int64(env, argv[1], &from) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &st_type, &st_len, &st_data, NULL, NULL) != napi_ok ||
      st_type != napi_uint32_array || st_len != 5 || napi_get_value_double(env, argv[3], &std_) != napi_ok || from < 0) {
    napi_throw_type_error(env, NULL, "semigan_native.fillNormal: expected (Float32Array, from, Uint32Array(5), std) after setZiggurat");
    return NULL;
  }
  float *out = (float *)out_data;
  uint32_t *st = (uint32_t *)st_data;
  sfc32 s = {st[0], st[1], st[2], st[3]};
  size_t i = (size_t)from;
  for (; i < n; i++) {
    const uint32_t u = sfc32_next(&s);
    const int layer = (int)(u & 127);
    const int32_t j = ((int32_t)u) >> 7;
    if (fabs((double)j) < zig_k[layer]) {
      out[i] = (float)(((double)j * zig_w[layer]) * std_);
      continue;
    }
    const sfc32 after_u = s;
    double value;
    if (!normal_slow(&s, j, layer, &value)) {
      s = after_u;
      st[4] = u;
      break;
    }
    out[i] = (float)(value * std_);
  }
  st[0] = s.a;
  st[1] = s.b;
  st[2] = s.c;
  st[3] = s.d;
  napi_value ret;
  CHECK(napi_create_int64(env, (int64_t)i, &ret));
  return ret;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t threads = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || napi_get_value_int32(env, argv[0], &threads) != napi_ok || threads < 1) {
    napi_throw_range_error(env, NULL, "semigan_native: threads must be a positive integer");
    return NULL;
  }
  use_threads(threads);
  return NULL;
}

static napi_value get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_int32(env, openblas_get_num_threads(), &out));
  return out;
}

// "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64 (pthreads)"
static napi_value describe(napi_env env, napi_callback_info info) {
  (void)info;
  static const char *kinds[] = {"sequential", "pthreads", "OpenMP"};
  int parallel = openblas_get_parallel();
  char text[512];
  snprintf(text, sizeof text, "%s core %s (%s)", openblas_get_config(), openblas_get_corename(),
           parallel >= 0 && parallel <= 2 ? kinds[parallel] : "unknown threading");
  napi_value out;
  CHECK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"matmul", NULL, matmul, NULL, NULL, NULL, napi_default, NULL},
      {"adam", NULL, adam, NULL, NULL, NULL, napi_default, NULL},
      {"ema", NULL, ema, NULL, NULL, NULL, napi_default, NULL},
      {"sumRows", NULL, sum_rows, NULL, NULL, NULL, napi_default, NULL},
      {"setZiggurat", NULL, set_ziggurat, NULL, NULL, NULL, napi_default, NULL},
      {"fillNormal", NULL, fill_normal, NULL, NULL, NULL, napi_default, NULL},
      {"weightNorm", NULL, weight_norm, NULL, NULL, NULL, napi_default, NULL},
      {"weightNormGrad", NULL, weight_norm_grad, NULL, NULL, NULL, napi_default, NULL},
      {"actGrad", NULL, act_grad, NULL, NULL, NULL, napi_default, NULL},
      {"bnSoftplus", NULL, bn_softplus, NULL, NULL, NULL, napi_default, NULL},
      {"bnSoftplusGrad", NULL, bn_softplus_grad, NULL, NULL, NULL, napi_default, NULL},
      {"dLosses", NULL, d_losses, NULL, NULL, NULL, napi_default, NULL},
      {"addTo", NULL, add_to, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"getThreads", NULL, get_threads, NULL, NULL, NULL, napi_default, NULL},
      {"describe", NULL, describe, NULL, NULL, NULL, napi_default, NULL},
      {"conv", NULL, semigan_conv, NULL, NULL, NULL, napi_default, NULL},
      {"convRoutes", NULL, semigan_conv_routes, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
