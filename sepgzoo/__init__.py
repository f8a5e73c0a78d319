"""sepgzoo: SEPG-Net for visible-infrared person re-identification (train, evaluate, export).

The public names are imported on first use (module `__getattr__`), so torch-free submodules such as
`sepgzoo.deploy.runtime` can be imported on machines without PyTorch.
"""

import importlib
from typing import TYPE_CHECKING

from sepgzoo.version import __version__

# public name -> (module, attribute or None for the module itself)
_LAZY = {
    "Modality": ("sepgzoo.modality", "Modality"),
    "SEPGNet": ("sepgzoo.models", "SEPGNet"),
    "TrainOutput": ("sepgzoo.models", "TrainOutput"),
    "create_model": ("sepgzoo.hub.factory", "create_model"),
    "is_model": ("sepgzoo.hub.factory", "is_model"),
    "list_models": ("sepgzoo.hub.factory", "list_models"),
    "losses": ("sepgzoo.training.losses", None),
    "seg": ("sepgzoo.models.seg", None),
}

__all__ = ["Modality", "SEPGNet", "TrainOutput", "create_model", "is_model", "list_models", "losses", "seg"]

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from sepgzoo.hub.factory import create_model, is_model, list_models
    from sepgzoo.modality import Modality
    from sepgzoo.models import SEPGNet, TrainOutput, seg
    from sepgzoo.training import losses


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sepgzoo' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
