#!/usr/bin/env bash
# Debian packages semigan's tests and benchmarks use (as root, or through sudo):
#   dataset-fashion-mnist   the real Fashion-MNIST idx files (/usr/share/datasets/fashion-mnist)
#   libopenblas-openmp-dev  OpenBLAS for the optional native matMul addon (src/native/, built by
#                           npm install): the wasm backend's matMuls on every core. The OpenMP
#                           build is the one the PyTorch peer uses too, so both share one BLAS.
#   libdnnl-dev             oneDNN for the addon's convs (forward and both gradients on every
#                           core, what PyTorch's CPU path uses); without it the addon's convs
#                           run im2col + OpenBLAS
#   chromium                headless browser for the report page and the browser-side tfjs test
#                           (driven by puppeteer-core, an npm devDependency)
#   python3-torch           only for the PyTorch peer benchmark (--with-peer)
set -euo pipefail
pkgs=(dataset-fashion-mnist libopenblas-openmp-dev libdnnl-dev chromium)
[[ "${1:-}" == "--with-peer" ]] && pkgs+=(python3-torch libopenblas0-openmp)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  as_root=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "install_system_deps.sh: run it as root (needs apt-get for: ${missing[*]})" >&2; exit 1; }
    as_root=(sudo)
  fi
  ${as_root[@]+"${as_root[@]}"} apt-get update -q
  ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
