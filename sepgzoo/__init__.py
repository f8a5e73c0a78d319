"""sepgzoo: SEPG-Net for visible-infrared person re-identification (train, evaluate, export)."""

from sepgzoo import losses, seg
from sepgzoo.modality import Modality
from sepgzoo.models import SEPGNet, TrainOutput
from sepgzoo.registry import create_model, is_model, list_models

__all__ = ["Modality", "SEPGNet", "TrainOutput", "create_model", "is_model", "list_models", "losses", "seg"]

__version__ = "0.1.0"
