"""Deployment: the contract, the ONNX exporter, TensorRT engines and the torch-free runtimes.

Importing this package imports nothing heavy: `sepgzoo.deploy.runtime` runs without PyTorch.
"""
