// 2D convolutions (forward, input gradient, filter gradient) on tensors in the wasm heap.
#ifndef SEMIGAN_CONV_H
#define SEMIGAN_CONV_H
#include <node_api.h>

// conv(heap, kind, aOff, bOff, outOff, geometry: Int32Array(15), threads, route, biasOff, leaky, slope)
napi_value semigan_conv(napi_env env, napi_callback_info info);
// convRoutes(): "onednn,im2col" or "im2col": the routes this build has, best first.
napi_value semigan_conv_routes(napi_env env, napi_callback_info info);

#endif
