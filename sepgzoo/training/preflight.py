"""A run checked whole before anything is written.

Start-up (`check_inputs`, then building the `Trainer`) parses the data set with the recipe's split options,
builds every evaluation protocol with the code the final evaluation uses and draws each of its trials, builds the
model, the sampler and the loader. Only then is the run folder created, so a recipe mistake costs seconds, not
the last epoch. The cross-key rules that need no data are checked when the recipe is built (`sepgzoo.config`).
"""

from dataclasses import dataclass
from typing import Any

from sepgzoo.config import Recipe
from sepgzoo.data.protocols import Protocol
from sepgzoo.data.sources import open_dataset
from sepgzoo.evaluation.scoring import build_protocols


@dataclass
class CheckedInputs:
    """The parsed data set and the evaluation protocols (every trial drawn) of a recipe."""

    dataset: Any
    protocols: list[Protocol]


def check_inputs(recipe: Recipe) -> CheckedInputs:
    """Parse the recipe's data set and build its evaluation protocols, as the final evaluation will.

    Protocols are built when the run evaluates at the end (`train.evaluate`); a run that does not is not refused
    for an evaluation it will not do.
    """
    dataset = open_dataset(recipe.data)
    return CheckedInputs(dataset, build_protocols(recipe, dataset) if recipe.train.evaluate else [])
