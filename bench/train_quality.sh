#!/usr/bin/env bash
# Fashion-MNIST training-quality check on the CPU (see bench/train_quality.py for what it measures).
# Usage: bash bench/train_quality.sh [--minutes 30] [--out docs/benchmarks.md] [-- stylegen-train-options]
set -euo pipefail
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
fi
cd "$(dirname "$0")/.."
exec python bench/train_quality.py "$@"
