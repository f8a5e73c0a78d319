"""Data: the data set registry, one module per data set, protocols, the sampler, transforms, synthetic data.

Importing this package imports every module in it, so each data set module registers itself: adding a data
set is adding its file (see the documentation, "Adding a dataset"). This loop is the only registration.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
