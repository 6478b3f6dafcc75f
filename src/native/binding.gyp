{
  "variables": {
    "has_dnnl": "<!(test -f /usr/include/oneapi/dnnl/dnnl.h && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "semigan_native",
      "sources": ["semigan_native.c", "semigan_conv.c"],
      "cflags": ["-O3", "-std=c11", "-fopenmp", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math", "-fno-math-errno"],
      "libraries": ["-lopenblas", "-lgomp", "-lm"],
      "conditions": [
        ["has_dnnl==1", {"defines": ["SEMIGAN_DNNL"], "libraries": ["-ldnnl"]}]
      ]
    }
  ]
}
