#!/usr/bin/env bash
# Train one experiment with several backbones, each in its own log folder, then list their test accuracy.
#   scripts/compare_backbones.sh configs/classification/vgg16_cifar10.yaml resnet18_cifar vgg11_bn_cifar [-- overrides ...]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s install
config=$1
shift
backbones=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do backbones+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
for name in "${backbones[@]}"; do
  root="logs/compare/${name//\//_}"
  .venv/bin/visionsuite fit --config "$config" --model.init_args.backbone "$name" \
    --trainer.default_root_dir "$root" "$@"
done
for name in "${backbones[@]}"; do
  printf '%-24s %s\n' "$name" "$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1])).get('test/acc'))" "logs/compare/${name//\//_}/latest/metrics.json")"
done
