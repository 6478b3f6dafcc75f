{
  "targets": [
    {
      "target_name": "openblas_matmul",
      "sources": ["openblas_matmul.c"],
      "cflags": ["-O2", "-std=c11"],
      "libraries": ["-lopenblas"]
    }
  ]
}
