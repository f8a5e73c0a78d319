"""Model files: `model.safetensors` (weights) + `model.json` (how to rebuild the model, and what it is).

`model.json` holds at least `model` (registered name), `model_args` (its keyword arguments) and
`format` (`sepgzoo-model/1`); training adds the recipe, epoch, world size, metrics and versions.
"""

import platform
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from sepgzoo.errors import UserError
from sepgzoo.hub.layout import META_NAME, WEIGHTS_NAME
from sepgzoo.models.registry import build_registered
from sepgzoo.preprocess import contract
from sepgzoo.utils.atomic import atomic_path, read_json, write_json

FORMAT = "sepgzoo-model/1"


def versions() -> dict[str, str]:
    """Versions of what produced a file, for model.json and export sidecars."""
    import timm

    from sepgzoo.version import __version__

    return {"sepgzoo": __version__, "torch": torch.__version__, "timm": timm.__version__,
            "python": platform.python_version()}


def save_model(directory: str | Path, model: nn.Module, **meta: Any) -> Path:
    """Atomically write `model.safetensors` and `model.json` into `directory`; returns the weights path.

    Example:
        >>> save_model("runs/demo", model, recipe=recipe_dict, epoch=12)
    """
    directory = Path(directory)
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        safetensors.torch.save_file(state, str(tmp))
    info = {"format": FORMAT, **model.config.to_meta(), "num_classes": model.num_classes,
            "embedding_dim": model.num_features, "preprocess": contract(model.input_size), "versions": versions(),
            **meta}
    write_json(directory / META_NAME, info)
    return directory / WEIGHTS_NAME


def update_meta(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Add or replace fields of a model folder's `model.json` (atomically); returns the new content."""
    _, meta_path = resolve_model_files(path)
    meta = {**read_meta(path), **fields}
    write_json(meta_path, meta)
    return meta


# Model files written before a model argument existed were built with its old behaviour (save_model now
# always records these arguments).
LEGACY_MODEL_ARGS = {"classifier": "linear", "part_norm": "joint"}


def resolve_model_files(path: str | Path) -> tuple[Path, Path]:
    """(weights, meta) paths for a run directory, a `model.safetensors` or a `model.json`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; expected a run folder or its {WEIGHTS_NAME}")
    if path.is_file() and path.name not in (WEIGHTS_NAME, META_NAME):
        raise UserError(f"{path} is not a sepgzoo model file: expected a run folder, or the {WEIGHTS_NAME} or "
                        f"{META_NAME} written by `sepgzoo train`")
    directory = path if path.is_dir() else path.parent
    weights, meta = directory / WEIGHTS_NAME, directory / META_NAME
    for required in (weights, meta):
        if not required.is_file():
            raise UserError(
                f"{required} not found: a sepgzoo model needs {WEIGHTS_NAME} and {META_NAME} in {directory}"
            )
    return weights, meta


def read_meta(path: str | Path) -> dict[str, Any]:
    """The parsed `model.json` of a model directory or file."""
    _, meta_path = resolve_model_files(path)
    return read_json(meta_path, FORMAT, ": not a sepgzoo model file")


def load_model(path: str | Path, device: str | torch.device = "cpu", **overrides: Any) -> tuple[nn.Module, dict]:
    """Rebuild a model from `model.json` and load `model.safetensors` strictly; returns (model in eval mode, meta).

    Args:
        path: run directory, `model.safetensors` or `model.json`.
        device: where to put the model.
        overrides: model arguments that change nothing in the weights (e.g. `seg_impl="matmul"`).
    """
    weights_path, _ = resolve_model_files(path)
    meta = read_meta(path)
    args = {**LEGACY_MODEL_ARGS, **meta["model_args"], **overrides}
    if "input_size" in args:
        args["input_size"] = tuple(args["input_size"])
    import sepgzoo.models  # noqa: F401  (registers the entrypoints)

    model = build_registered(meta["model"], **{key: value for key, value in args.items() if value is not None})
    try:
        state = safetensors.torch.load_file(str(weights_path))
    except Exception as err:  # safetensors raises its own error types for truncated or foreign files
        raise UserError(f"{weights_path} is not a readable safetensors file: {err}") from err
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserError(
            f"{weights_path} does not fit model {meta['model']} {args} built from {META_NAME}: {str(err)[:500]}"
        ) from err
    return model.to(device).eval(), meta


def save_torch(path: str | Path, obj: Any) -> None:
    """Atomically torch.save an object (e.g. the full training state, `last.pt`)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
