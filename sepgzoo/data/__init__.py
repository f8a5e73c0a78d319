"""Data: the data set registry, one module per data set, protocols, the cross-modality sampler, transforms, synthetic data.

Importing this package imports every module in it, so each data set module registers itself: adding a data
set is adding its file (see README, "Adding a dataset").
"""

import importlib
import pkgutil

from sepgzoo.data.datasets import INFRARED, MODALITIES, VISIBLE, Sample, load_image
from sepgzoo.data.llcm import LLCM, LLCMProtocol  # registers "llcm"
from sepgzoo.data.protocols import AllPairsProtocol, Protocol, build_protocol, with_fixed_options
from sepgzoo.data.regdb import RegDB, RegDBProtocol  # registers "regdb"
from sepgzoo.data.registry import DatasetSpec, build_dataset, dataset_names, get_dataset, register_dataset
from sepgzoo.data.sampler import CrossModalitySampler
from sepgzoo.data.synthetic import write_synthetic
from sepgzoo.data.sysu import SYSUMM01, SYSUProtocol  # registers "sysu" and "synthetic"
from sepgzoo.data.torchdata import CrossModalityDataset, ImageDataset
from sepgzoo.data.transforms import build_test_transform, build_train_transform

__all__ = ["INFRARED", "MODALITIES", "VISIBLE", "Sample", "load_image", "AllPairsProtocol", "Protocol",
           "build_protocol", "with_fixed_options", "DatasetSpec", "build_dataset",
           "dataset_names", "get_dataset", "register_dataset", "SYSUMM01", "SYSUProtocol", "RegDB", "RegDBProtocol",
           "LLCM", "LLCMProtocol", "CrossModalitySampler", "write_synthetic", "CrossModalityDataset", "ImageDataset",
           "build_test_transform", "build_train_transform"]

for _module in pkgutil.iter_modules(__path__):  # a new data set file registers without touching this one
    importlib.import_module(f"{__name__}.{_module.name}")
