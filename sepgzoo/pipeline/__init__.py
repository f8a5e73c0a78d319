"""The PyTorch input pipeline: image files to tensors (train and test transforms), the P x (K + K) cross-modality
sampler, and the torch Datasets training and evaluation read. Everything that needs PyTorch to feed a model lives
here, so `sepgzoo.data` (data sets, splits, protocols) stays importable without it."""
