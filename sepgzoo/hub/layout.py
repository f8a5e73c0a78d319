"""The files of a model folder (a run folder or a materialised zoo entry), named once. Torch-free."""

WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"
TRAINING_RECORD = "metrics.json"  # the training's own evaluation, written once (sepgzoo.evaluation.records)
EVALS_FOLDER = "evals"  # every later evaluation, one file each
