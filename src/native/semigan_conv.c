// 2D convolutions on tensors in the tfjs wasm backend's heap, NHWC activations and tfjs's
// [kh, kw, in, out] filters, on every thread given:
//  - oneDNN (when built with it, SEMIGAN_DNNL): the primitives PyTorch's CPU path uses. Activations
//    stay NHWC in the heap; only the filter is reordered to the layout oneDNN picks.
//  - im2col + OpenBLAS sgemm, parallel over images: OpenBLAS's own threads over the small
//    per-image products were measured 4-8x slower than one thread each.
// kind 0: y = conv(x, W) [+ bias] [then leaky ReLU]; 1: dx = conv^T(dy, W); 2: dW = sum over
// images of x (x) dy.
#include "semigan_conv.h"
#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef SEMIGAN_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

enum { CONV_FORWARD = 0, CONV_INPUT_GRAD = 1, CONV_FILTER_GRAD = 2 };
enum { ROUTE_BEST = 0, ROUTE_IM2COL = 1 };

// The forward conv's geometry (NHWC names); the padded input starts `top` rows and `left`
// columns before x, and `bottom`/`right` are tfjs's padding after it (only oneDNN reads them).
typedef struct {
  int32_t n, h, w, c, oc, kh, kw, oh, ow, sh, sw, top, left, bottom, right;
} geometry;
#define GEOMETRY_INTS 15

static int64_t x_floats(const geometry *g) { return (int64_t)g->n * g->h * g->w * g->c; }
static int64_t y_floats(const geometry *g) { return (int64_t)g->n * g->oh * g->ow * g->oc; }
static int64_t w_floats(const geometry *g) { return (int64_t)g->kh * g->kw * g->c * g->oc; }

static bool geometry_ok(const geometry *g) {
  if (g->n < 1 || g->h < 1 || g->w < 1 || g->c < 1 || g->oc < 1 || g->kh < 1 || g->kw < 1 || g->oh < 1 ||
      g->ow < 1 || g->sh < 1 || g->sw < 1 || g->top < 0 || g->left < 0 || g->top >= g->kh || g->left >= g->kw)
    return false;
  // Every output reads inside the padded input (the last window may end past x: zeros).
  return (int64_t)(g->oh - 1) * g->sh - g->top < g->h && (int64_t)(g->ow - 1) * g->sw - g->left < g->w;
}

// ---- im2col + OpenBLAS ----

// col[p, (i*kw + j)*c + ch] = x[oy*sh + i - top, ox*sw + j - left, ch], 0 outside x (p = oy*ow + ox).
static void im2col(const geometry *g, const float *x, float *col) {
  const int64_t k = (int64_t)g->kh * g->kw * g->c;
  for (int oy = 0; oy < g->oh; oy++)
    for (int ox = 0; ox < g->ow; ox++) {
      float *row = col + ((int64_t)oy * g->ow + ox) * k;
      for (int i = 0; i < g->kh; i++) {
        const int iy = oy * g->sh + i - g->top;
        for (int j = 0; j < g->kw; j++) {
          const int ix = ox * g->sw + j - g->left;
          float *to = row + ((int64_t)i * g->kw + j) * g->c;
          if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
            memset(to, 0, sizeof(float) * g->c);
          else
            memcpy(to, x + ((int64_t)iy * g->w + ix) * g->c, sizeof(float) * g->c);
        }
      }
    }
}

// dx[iy, ix, ch] += dcol[p, (i*kw + j)*c + ch]: im2col's adjoint, in a fixed order.
static void col2im(const geometry *g, const float *dcol, float *dx) {
  const int64_t k = (int64_t)g->kh * g->kw * g->c;
  memset(dx, 0, sizeof(float) * (size_t)g->h * g->w * g->c);
  for (int oy = 0; oy < g->oh; oy++)
    for (int ox = 0; ox < g->ow; ox++) {
      const float *row = dcol + ((int64_t)oy * g->ow + ox) * k;
      for (int i = 0; i < g->kh; i++) {
        const int iy = oy * g->sh + i - g->top;
        if (iy < 0 || iy >= g->h) continue;
        for (int j = 0; j < g->kw; j++) {
          const int ix = ox * g->sw + j - g->left;
          if (ix < 0 || ix >= g->w) continue;
          const float *from = row + ((int64_t)i * g->kw + j) * g->c;
          float *to = dx + ((int64_t)iy * g->w + ix) * g->c;
          for (int ch = 0; ch < g->c; ch++) to[ch] += from[ch];
        }
      }
    }
}

// The forward epilogue: + bias per channel, then leaky ReLU (slope < 1), as tfjs's ops round them.
typedef struct {
  const float *bias; // NULL: none
  bool leaky;
  float slope;
} epilogue;

static void apply_epilogue(const epilogue *e, float *y, int64_t rows, int64_t oc) {
  if (!e->bias && !e->leaky) return;
  for (int64_t r = 0; r < rows; r++) {
    float *row = y + r * oc;
    if (e->bias)
      for (int64_t o = 0; o < oc; o++) row[o] += e->bias[o];
    if (e->leaky)
      for (int64_t o = 0; o < oc; o++) row[o] = row[o] > 0.0f ? row[o] : row[o] * e->slope;
  }
}

// false when a buffer could not be allocated.
static bool conv_im2col(int kind, const geometry *g, const float *a, const float *b, float *out, int threads,
                        const epilogue *ep) {
  const int64_t p = (int64_t)g->oh * g->ow, k = (int64_t)g->kh * g->kw * g->c;
  const int64_t x_img = (int64_t)g->h * g->w * g->c, y_img = p * g->oc;
  const int t = threads < g->n ? threads : g->n;
  float *cols = malloc(sizeof(float) * (size_t)(p * k) * t);
  float *partial = kind == CONV_FILTER_GRAD ? calloc((size_t)(k * g->oc) * t, sizeof(float)) : NULL;
  bool ok = cols && (kind != CONV_FILTER_GRAD || partial);
  if (ok) {
    // Static chunks: which images a thread sums (filter gradient) depends only on n and t.
#pragma omp parallel for num_threads(t) schedule(static)
    for (int img = 0; img < g->n; img++) {
      const int me = omp_get_thread_num();
      float *col = cols + (size_t)(p * k) * me;
      if (kind == CONV_FORWARD) { // a: x, b: W [k, oc]
        im2col(g, a + img * x_img, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p, g->oc, k, 1.0f, col, k, b, g->oc, 0.0f,
                    out + img * y_img, g->oc);
        apply_epilogue(ep, out + img * y_img, p, g->oc);
      } else if (kind == CONV_INPUT_GRAD) { // a: dy, b: W
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p, k, g->oc, 1.0f, a + img * y_img, g->oc, b, g->oc,
                    0.0f, col, k);
        col2im(g, col, out + img * x_img);
      } else { // a: x, b: dy
        im2col(g, a + img * x_img, col);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, g->oc, p, 1.0f, col, k, b + img * y_img, g->oc, 1.0f,
                    partial + (size_t)(k * g->oc) * me, g->oc);
      }
    }
    if (kind == CONV_FILTER_GRAD) {
      memcpy(out, partial, sizeof(float) * (size_t)(k * g->oc));
      for (int s = 1; s < t; s++) {
        const float *from = partial + (size_t)(k * g->oc) * s;
        for (int64_t i = 0; i < k * g->oc; i++) out[i] += from[i];
      }
    }
  }
  free(cols);
  free(partial);
  return ok;
}

// ---- oneDNN ----

#ifdef SEMIGAN_DNNL
// One primitive per (kind, geometry), with memories whose data handles point into the heap at
// each call, and the reorder between tfjs's filter layout and the one the primitive wants.
typedef struct {
  int kind;
  geometry g;
  bool bias, leaky;
  float slope;
  dnnl_primitive_t conv, reorder;
  dnnl_memory_t src, weights, dst, user_weights, bias_mem;
  size_t weights_bytes;
  void *weights_buffer;
} dnnl_entry;

#define DNNL_CACHE 64
static dnnl_entry cache[DNNL_CACHE];
static int cache_used = 0, cache_next = 0;
static dnnl_engine_t engine = NULL;
static dnnl_stream_t stream = NULL;

static void entry_free(dnnl_entry *e) {
  if (e->conv) dnnl_primitive_destroy(e->conv);
  if (e->reorder) dnnl_primitive_destroy(e->reorder);
  if (e->src) dnnl_memory_destroy(e->src);
  if (e->weights) dnnl_memory_destroy(e->weights);
  if (e->dst) dnnl_memory_destroy(e->dst);
  if (e->user_weights) dnnl_memory_destroy(e->user_weights);
  if (e->bias_mem) dnnl_memory_destroy(e->bias_mem);
  free(e->weights_buffer);
  memset(e, 0, sizeof *e);
}

#define DNNL_OK(call) ok = ok && (call) == dnnl_success

static bool entry_build(dnnl_entry *e, int kind, const geometry *g, const epilogue *ep) {
  bool ok = true;
  if (!engine) {
    DNNL_OK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    if (!ok) return false;
  }
  memset(e, 0, sizeof *e);
  e->kind = kind;
  e->g = *g;
  e->bias = ep->bias != NULL;
  e->leaky = ep->leaky;
  e->slope = ep->leaky ? ep->slope : 0.0f;
  dnnl_dims_t x_dims = {g->n, g->c, g->h, g->w}, y_dims = {g->n, g->oc, g->oh, g->ow};
  dnnl_dims_t w_dims = {g->oc, g->c, g->kh, g->kw};
  dnnl_dims_t strides = {g->sh, g->sw}, pad_l = {g->top, g->left}, pad_r = {g->bottom, g->right};
  dnnl_memory_desc_t x_md, y_md, w_any, w_user, b_md;
  dnnl_dims_t b_dims = {g->oc};
  DNNL_OK(dnnl_memory_desc_init_by_tag(&b_md, 1, b_dims, dnnl_f32, dnnl_x));
  DNNL_OK(dnnl_memory_desc_init_by_tag(&x_md, 4, x_dims, dnnl_f32, dnnl_nhwc));
  DNNL_OK(dnnl_memory_desc_init_by_tag(&y_md, 4, y_dims, dnnl_f32, dnnl_nhwc));
  DNNL_OK(dnnl_memory_desc_init_by_tag(&w_any, 4, w_dims, dnnl_f32, dnnl_format_tag_any));
  DNNL_OK(dnnl_memory_desc_init_by_tag(&w_user, 4, w_dims, dnnl_f32, dnnl_hwio));
  dnnl_convolution_desc_t fwd_d, bwd_d;
  dnnl_primitive_desc_t fwd_pd = NULL, pd = NULL;
  DNNL_OK(dnnl_convolution_forward_desc_init(&fwd_d, dnnl_forward_training, dnnl_convolution_direct, &x_md, &w_any,
                                             e->bias ? &b_md : NULL, &y_md, strides, pad_l, pad_r));
  // Leaky ReLU as a post-op: oneDNN's relu with alpha is x > 0 ? x : alpha * x.
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t post_ops = NULL;
  if (e->leaky) {
    DNNL_OK(dnnl_primitive_attr_create(&attr));
    DNNL_OK(dnnl_post_ops_create(&post_ops));
    DNNL_OK(dnnl_post_ops_append_eltwise(post_ops, 1.0f, dnnl_eltwise_relu, e->slope, 0.0f));
    DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, post_ops));
  }
  DNNL_OK(dnnl_primitive_desc_create(&fwd_pd, &fwd_d, attr, engine, NULL));
  if (post_ops) dnnl_post_ops_destroy(post_ops);
  if (attr) dnnl_primitive_attr_destroy(attr);
  dnnl_query_t w_query = dnnl_query_weights_md;
  if (kind == CONV_FORWARD) {
    pd = fwd_pd;
    fwd_pd = NULL;
  } else if (kind == CONV_INPUT_GRAD) {
    DNNL_OK(dnnl_convolution_backward_data_desc_init(&bwd_d, dnnl_convolution_direct, &x_md, &w_any, &y_md, strides,
                                                     pad_l, pad_r));
    DNNL_OK(dnnl_primitive_desc_create(&pd, &bwd_d, NULL, engine, fwd_pd));
  } else {
    DNNL_OK(dnnl_convolution_backward_weights_desc_init(&bwd_d, dnnl_convolution_direct, &x_md, &w_any, NULL, &y_md,
                                                        strides, pad_l, pad_r));
    DNNL_OK(dnnl_primitive_desc_create(&pd, &bwd_d, NULL, engine, fwd_pd));
    w_query = dnnl_query_diff_weights_md;
  }
  if (ok) {
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, w_query, 0);
    DNNL_OK(dnnl_primitive_create(&e->conv, pd));
    DNNL_OK(dnnl_memory_create(&e->src, &x_md, engine, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&e->dst, &y_md, engine, DNNL_MEMORY_NONE));
    if (e->bias) DNNL_OK(dnnl_memory_create(&e->bias_mem, &b_md, engine, DNNL_MEMORY_NONE));
    if (ok && !dnnl_memory_desc_equal(w_md, &w_user)) {
      e->weights_bytes = dnnl_memory_desc_get_size(w_md);
      e->weights_buffer = aligned_alloc(64, (e->weights_bytes + 63) / 64 * 64);
      ok = e->weights_buffer != NULL;
      DNNL_OK(dnnl_memory_create(&e->weights, w_md, engine, e->weights_buffer));
      DNNL_OK(dnnl_memory_create(&e->user_weights, &w_user, engine, DNNL_MEMORY_NONE));
      dnnl_primitive_desc_t r_pd = NULL;
      if (kind == CONV_FILTER_GRAD)
        DNNL_OK(dnnl_reorder_primitive_desc_create(&r_pd, w_md, engine, &w_user, engine, NULL));
      else
        DNNL_OK(dnnl_reorder_primitive_desc_create(&r_pd, &w_user, engine, w_md, engine, NULL));
      DNNL_OK(dnnl_primitive_create(&e->reorder, r_pd));
      if (r_pd) dnnl_primitive_desc_destroy(r_pd);
    } else {
      DNNL_OK(dnnl_memory_create(&e->weights, &w_user, engine, DNNL_MEMORY_NONE));
    }
  }
  if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (!ok) entry_free(e);
  return ok;
}

static dnnl_entry *entry_for(int kind, const geometry *g, const epilogue *ep) {
  const float slope = ep->leaky ? ep->slope : 0.0f;
  for (int i = 0; i < cache_used; i++)
    if (cache[i].kind == kind && memcmp(&cache[i].g, g, sizeof *g) == 0 && cache[i].bias == (ep->bias != NULL) &&
        cache[i].leaky == ep->leaky && cache[i].slope == slope)
      return &cache[i];
  dnnl_entry *e;
  if (cache_used < DNNL_CACHE) {
    e = &cache[cache_used++];
  } else { // full: replace the oldest
    e = &cache[cache_next];
    cache_next = (cache_next + 1) % DNNL_CACHE;
    entry_free(e);
  }
  return entry_build(e, kind, g, ep) ? e : NULL;
}

static bool conv_dnnl(int kind, const geometry *g, float *a, float *b, float *out, const epilogue *ep) {
  dnnl_entry *e = entry_for(kind, g, ep);
  if (!e) return false;
  // Roles: forward (src x, weights W, dst y); input grad (diff_src dx, weights W, diff_dst dy);
  // filter grad (src x, diff_weights dW, diff_dst dy).
  float *x = kind == CONV_FORWARD || kind == CONV_FILTER_GRAD ? a : out;
  float *y = kind == CONV_FORWARD ? out : kind == CONV_INPUT_GRAD ? a : b;
  float *w = kind == CONV_FILTER_GRAD ? out : b;
  bool ok = true;
  DNNL_OK(dnnl_memory_set_data_handle(e->src, x));
  DNNL_OK(dnnl_memory_set_data_handle(e->dst, y));
  if (e->reorder) {
    DNNL_OK(dnnl_memory_set_data_handle(e->user_weights, w));
    if (kind != CONV_FILTER_GRAD) {
      dnnl_exec_arg_t r[] = {{DNNL_ARG_FROM, e->user_weights}, {DNNL_ARG_TO, e->weights}};
      DNNL_OK(dnnl_primitive_execute(e->reorder, stream, 2, r));
    }
  } else {
    DNNL_OK(dnnl_memory_set_data_handle(e->weights, w));
  }
  const int src_arg = kind == CONV_INPUT_GRAD ? DNNL_ARG_DIFF_SRC : DNNL_ARG_SRC;
  const int dst_arg = kind == CONV_FORWARD ? DNNL_ARG_DST : DNNL_ARG_DIFF_DST;
  const int w_arg = kind == CONV_FILTER_GRAD ? DNNL_ARG_DIFF_WEIGHTS : DNNL_ARG_WEIGHTS;
  if (e->bias) DNNL_OK(dnnl_memory_set_data_handle(e->bias_mem, (void *)ep->bias));
  dnnl_exec_arg_t args[] = {{src_arg, e->src}, {w_arg, e->weights}, {dst_arg, e->dst}, {DNNL_ARG_BIAS, e->bias_mem}};
  DNNL_OK(dnnl_primitive_execute(e->conv, stream, e->bias ? 4 : 3, args));
  if (e->reorder && kind == CONV_FILTER_GRAD) {
    dnnl_exec_arg_t r[] = {{DNNL_ARG_FROM, e->weights}, {DNNL_ARG_TO, e->user_weights}};
    DNNL_OK(dnnl_primitive_execute(e->reorder, stream, 2, r));
  }
  DNNL_OK(dnnl_stream_wait(stream));
  return ok;
}
#endif

// ---- N-API ----

static napi_value fail(napi_env env, const char *text) {
  napi_throw_error(env, NULL, text);
  return NULL;
}

napi_value semigan_conv(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  size_t argc = 11;
  void *heap = NULL, *geom_data = NULL;
  size_t heap_bytes = 0, geom_length = 0;
  int64_t kind, offs[3], bias_off;
  int32_t threads, route;
  bool leaky;
  double slope;
  napi_typedarray_type geom_type;
  bool ok = napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 11 &&
            napi_get_arraybuffer_info(env, argv[0], &heap, &heap_bytes) == napi_ok &&
            napi_get_value_int64(env, argv[1], &kind) == napi_ok &&
            napi_get_value_int64(env, argv[2], &offs[0]) == napi_ok &&
            napi_get_value_int64(env, argv[3], &offs[1]) == napi_ok &&
            napi_get_value_int64(env, argv[4], &offs[2]) == napi_ok &&
            napi_get_typedarray_info(env, argv[5], &geom_type, &geom_length, &geom_data, NULL, NULL) == napi_ok &&
            geom_type == napi_int32_array && geom_length == GEOMETRY_INTS &&
            napi_get_value_int32(env, argv[6], &threads) == napi_ok &&
            napi_get_value_int32(env, argv[7], &route) == napi_ok &&
            napi_get_value_int64(env, argv[8], &bias_off) == napi_ok &&
            napi_get_value_bool(env, argv[9], &leaky) == napi_ok && napi_get_value_double(env, argv[10], &slope) == napi_ok &&
            kind >= 0 && kind <= 2 && threads >= 1 && (kind == CONV_FORWARD || (bias_off < 0 && !leaky));
  if (!ok)
    return fail(env, "semigan_native.conv: expected (heap, kind 0-2, aOff, bOff, outOff, Int32Array(15), threads, route, "
                     "biasOff, leaky, slope); bias and leaky only forward");
  geometry g;
  memcpy(&g, geom_data, sizeof g);
  if (!geometry_ok(&g)) return fail(env, "semigan_native.conv: inconsistent geometry");
  // Operand sizes: forward (x, W -> y), input grad (dy, W -> dx), filter grad (x, dy -> dW).
  const int64_t sizes[3][3] = {{x_floats(&g), w_floats(&g), y_floats(&g)},
                               {y_floats(&g), w_floats(&g), x_floats(&g)},
                               {x_floats(&g), y_floats(&g), w_floats(&g)}};
  for (int i = 0; i < 3; i++)
    if (offs[i] < 0 || offs[i] % 4 != 0 || (uint64_t)(offs[i] + sizes[kind][i] * 4) > heap_bytes)
      return fail(env, "semigan_native.conv: operand outside the heap");
  if (bias_off >= 0 && (bias_off % 4 != 0 || (uint64_t)(bias_off + (int64_t)g.oc * 4) > heap_bytes))
    return fail(env, "semigan_native.conv: bias outside the heap");
  char *base = heap;
  float *a = (float *)(base + offs[0]), *b = (float *)(base + offs[1]), *out = (float *)(base + offs[2]);
  const epilogue ep = {bias_off >= 0 ? (const float *)(base + bias_off) : NULL, leaky, (float)slope};
  omp_set_num_threads(threads);
#ifdef SEMIGAN_DNNL
  // oneDNN 2.6 gave wrong filter gradients for strided 1x1 convs and corrupted the heap on an AVX2
  // EPYC (test/nn/conv_grad.test.ts); im2col takes those shapes.
  const bool strided_1x1 = g.kh == 1 && g.kw == 1 && (g.sh > 1 || g.sw > 1);
  if (route == ROUTE_BEST && !strided_1x1) {
    if (!conv_dnnl((int)kind, &g, a, b, out, &ep)) return fail(env, "semigan_native.conv: oneDNN failed on this shape");
    return NULL;
  }
#endif
  if (!conv_im2col((int)kind, &g, a, b, out, threads, &ep)) return fail(env, "semigan_native.conv: out of memory");
  return NULL;
}

napi_value semigan_conv_routes(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef SEMIGAN_DNNL
  const dnnl_version_t *v = dnnl_version();
  char text[96];
  snprintf(text, sizeof text, "onednn %d.%d.%d,im2col", v->major, v->minor, v->patch);
#else
  const char *text = "im2col";
#endif
  napi_value out;
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out) != napi_ok) return NULL;
  return out;
}
