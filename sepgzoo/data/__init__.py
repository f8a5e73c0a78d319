"""Data: dataset parsers, evaluation protocols, the cross-modality sampler, transforms and synthetic data."""

from sepgzoo.data.datasets import (INFRARED, MODALITIES, VISIBLE, LLCM, RegDB, Sample, SYSUMM01, build_dataset,
                                   load_image, register_dataset)
from sepgzoo.data.protocols import (PROTOCOLS, LLCMProtocol, Protocol, RegDBProtocol, SYSUProtocol, average_results,
                                    build_protocol, run_trials)
from sepgzoo.data.sampler import CrossModalitySampler
from sepgzoo.data.synthetic import write_synthetic
from sepgzoo.data.torchdata import CrossModalityDataset, ImageDataset
from sepgzoo.data.transforms import build_test_transform, build_train_transform

__all__ = ["INFRARED", "MODALITIES", "VISIBLE", "LLCM", "RegDB", "Sample", "SYSUMM01", "build_dataset", "load_image",
           "register_dataset", "PROTOCOLS", "LLCMProtocol", "Protocol", "RegDBProtocol", "SYSUProtocol",
           "average_results", "build_protocol", "run_trials", "CrossModalitySampler", "write_synthetic",
           "CrossModalityDataset", "ImageDataset", "build_test_transform", "build_train_transform"]
