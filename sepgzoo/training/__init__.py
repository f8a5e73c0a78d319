"""Training: the loss, the loop, run folders, distributed set-up, ablations, pretraining, benchmarks."""
