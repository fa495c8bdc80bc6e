#!/usr/bin/env bash
# Classify every image in a folder; writes predictions.csv (file, predicted class, probability).
#   scripts/predict.sh configs/classification/lenet5_fashion_mnist.yaml path/to/best.ckpt my_images/ [overrides ...]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s install
config=$1 ckpt=$2 folder=$3
shift 3
exec .venv/bin/visionsuite predict --config "$config" --ckpt_path "$ckpt" --data.init_args.predict_dir "$folder" "$@"
