#!/usr/bin/env bash
# Train one experiment and test its best checkpoint.
#   scripts/train.sh configs/classification/vgg16_cifar10.yaml [--trainer.max_epochs 5 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s install
exec .venv/bin/visionsuite fit --config "$@"
