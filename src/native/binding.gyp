{
  "targets": [
    {
      "target_name": "semigan_native",
      "sources": ["semigan_native.c"],
      "cflags": ["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math", "-fno-math-errno"],
      "libraries": ["-lopenblas", "-lm"]
    }
  ]
}
