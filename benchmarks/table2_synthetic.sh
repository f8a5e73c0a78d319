#!/usr/bin/env bash
# Table II on the demo's synthetic data, both regimes, 3 seeds, 60 epochs: the runs behind README
# "Where the paper is silent" (results in benchmarks/results/table2-synthetic/). About 12 runs x 1.5-3 min
# per regime on one CPU thread; run the two regimes in parallel on two cores.
set -euo pipefail
BUDGET=(--seeds 3 --set train.epochs=60 --set "optim.milestones=[40,52]" --set data.workers=0)
sepgzoo ablate --recipe synthetic "${BUDGET[@]}" --output runs/table2-scratch
sepgzoo pretrain --out runs/pretrain/test_resnet.safetensors
sepgzoo ablate --recipe synthetic "${BUDGET[@]}" --set model.pretrained=runs/pretrain/test_resnet.safetensors \
  --set optim.backbone_lr_mult=0.1 --output runs/table2-pretrained
