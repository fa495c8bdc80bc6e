#!/usr/bin/env bash
# Test a checkpoint of an experiment.
#   scripts/test.sh configs/classification/lenet5_fashion_mnist.yaml path/to/best.ckpt [overrides ...]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s install
config=$1 ckpt=$2
shift 2
exec .venv/bin/visionsuite test --config "$config" --ckpt_path "$ckpt" "$@"
