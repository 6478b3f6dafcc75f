// Native kernels on tensors that live in the tfjs wasm backend's heap:
//  - matmul: OpenBLAS sgemm. The wasm backend (XNNPACK) runs one thread in Node; OpenBLAS uses
//    every core with native AVX kernels.
//  - sum_rows: sums over leading axes without tfjs's transpose, in tfjs's order (bit-identical).
//  - fill_normal: the common case of the seeded normal sampler (src/rng.ts), bit-identical.
//  - adam, ema: the optimizer and weight-average updates in one pass, in place, instead of ~13
//    and 3 tfjs kernel calls per parameter. Same float32 operations in the same order as the tfjs
//    code they replace (src/train/adam.ts, ema.ts), each correctly rounded (no FMA contraction,
//    no fast-math), so the results are bit-identical.
// The caller passes the heap's ArrayBuffer and byte offsets, so no tensor is copied in or out.
// Everything here is synchronous: the heap cannot grow or move while it runs, because JavaScript
// is blocked in this call.
#include <node_api.h>
#include <cblas.h>
#include <stdbool.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
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
enum { ACT_LINEAR = 0, ACT_RELU = 1, ACT_LEAKY_RELU = 2 };

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
      act < ACT_LINEAR || act > ACT_LEAKY_RELU) {
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

// The ziggurat normal sampler of src/rng.ts (sfc32 draws, 128 layers), its common case only:
// fill_normal(out, from, state, std) fills out[from..] until it meets a draw that needs the
// ziggurat's slow path (tail or wedge, ~1.2%); it returns that index, with the draw in state[4],
// and JavaScript computes that value (its Math.log / Math.exp) before calling again. state[0..3]
// is the generator, read and written back. The arithmetic is JavaScript's (double, one rounding
// to float32 at the end), so the numbers are bit-identical.
static double zig_k[128], zig_w[128];
static bool zig_ready = false;

static napi_value set_ziggurat(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double *tables[2] = {zig_k, zig_w};
  for (int t = 0; t < 2; t++) {
    napi_typedarray_type type;
    size_t len;
    void *data;
    if (argc != 2 || napi_get_typedarray_info(env, argv[t], &type, &len, &data, NULL, NULL) != napi_ok || type != napi_float64_array || len != 128) {
      napi_throw_type_error(env, NULL, "semigan_native.setZiggurat: expected two Float64Arrays of 128");
      return NULL;
    }
    memcpy(tables[t], data, sizeof zig_k);
  }
  zig_ready = true;
  return NULL;
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
  uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
  size_t i = (size_t)from;
  for (; i < n; i++) {
    const uint32_t u = a + b + d; // sfc32, as Rng.nextUint32
    d = d + 1;
    a = b ^ (b >> 9);
    b = c + (c << 3);
    c = (c << 21) | (c >> 11);
    c = c + u;
    const int layer = (int)(u & 127);
    const int32_t j = ((int32_t)u) >> 7;
    if (!(fabs((double)j) < zig_k[layer])) {
      st[4] = u;
      break;
    }
    out[i] = (float)(((double)j * zig_w[layer]) * std_);
  }
  st[0] = a;
  st[1] = b;
  st[2] = c;
  st[3] = d;
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
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"getThreads", NULL, get_threads, NULL, NULL, NULL, napi_default, NULL},
      {"describe", NULL, describe, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
