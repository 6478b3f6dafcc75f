{
  "targets": [
    {
      "target_name": "semigan_native",
      "sources": ["semigan_native.c"],
      "cflags": ["-O2", "-std=c11", "-ffp-contract=off", "-fno-fast-math"],
      "libraries": ["-lopenblas", "-lm"]
    }
  ]
}
