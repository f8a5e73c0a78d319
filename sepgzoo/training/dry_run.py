"""`sepgzoo train --dry-run`: the start-up checks of a run, one decoded batch, a few timed steps, the evaluation
set-up on a few test images, and the plan (model, data, schedule, time estimate, output); writes nothing."""

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sepgzoo.config import Recipe
from sepgzoo.data.protocols import Protocol
from sepgzoo.data.sources import dataset_root
from sepgzoo.evaluation.features import extract_features
from sepgzoo.hub.layout import META_NAME, TRAINING_RECORD, WEIGHTS_NAME
from sepgzoo.training.curves import CURVES_NAME, LOG_NAME
from sepgzoo.training.distributed import DistInfo
from sepgzoo.training.engine import Trainer
from sepgzoo.training.preflight import check_inputs
from sepgzoo.training.runs import STATE_NAME, check_new_run_dir, run_dir_path, seed_everything
from sepgzoo.utils.device import resolve_device
from sepgzoo.utils.timing import median_seconds, timed

#: what a run folder holds when training ends (docs/training.md)
RUN_FILES = ("recipe.yaml", STATE_NAME, WEIGHTS_NAME, META_NAME, LOG_NAME, CURVES_NAME, TRAINING_RECORD)


def dry_run(recipe: Recipe, output: str | Path | None = None, steps: int = 2, eval_images: int = 4) -> dict[str, Any]:
    """Everything `sepgzoo train` would do before its first epoch, plus a measured step; writes nothing.

    Args:
        recipe: the resolved recipe (its `data.cache` is ignored here: the dry run leaves no cached image).
        output: the run folder the real run would write (checked, not created).
        steps: timed forward/backward steps, after one untimed warm-up step.
        eval_images: test images of each modality whose features are extracted.

    Returns:
        The plan (`format_plan` prints it).
    """
    recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, cache=False))
    device = resolve_device(recipe.train.device)
    run_dir = run_dir_path(recipe.name, output)
    check_new_run_dir(run_dir)
    checked = check_inputs(recipe)
    seed_everything(recipe.train.seed)
    trainer = Trainer(recipe, None, DistInfo(), device, dataset=checked.dataset)
    decode_seconds, batch = _first_batch(trainer.loader)
    per_step = median_seconds(lambda: trainer.train_step(*batch), steps, warmup=1, device=device)
    batches = len(trainer.loader)
    epochs = recipe.train.epochs
    return {
        "recipe": recipe.name, "device": str(device),
        "model": _describe_model(trainer.model, recipe),
        "data": {"dataset": recipe.data.dataset, "root": str(dataset_root(recipe.data)),
                 "train_ids": trainer.num_classes, "held_out_ids": len({s.pid for s in trainer.val_samples}),
                 "train_visible": len(trainer.loader.dataset.visible),
                 "train_infrared": len(trainer.loader.dataset.infrared),
                 "batch": {"visible": list(batch[0].shape), "infrared": list(batch[1].shape)},
                 "decode_seconds": round(decode_seconds, 2)},
        "schedule": {"images_per_step": int(batch[0].shape[0] + batch[1].shape[0]), "batches_per_epoch": batches,
                     "epochs": epochs},
        "timing": {"seconds_per_step": round(per_step, 3), "timed_steps": steps, "warmup_steps": 1,
                   "epoch_seconds": round(per_step * batches, 1), "run_seconds": round(per_step * batches * epochs)},
        "evaluation": _check_evaluation(trainer.model, checked.protocols, recipe, device, eval_images),
        "output": {"run_dir": str(run_dir), "files": list(RUN_FILES)},
    }


def _first_batch(loader) -> tuple[float, tuple[torch.Tensor, ...]]:
    """(seconds, batch) of the loader's first batch: workers started, images decoded and augmented."""
    result = []
    seconds = timed(lambda: result.append(next(iter(loader))))
    return seconds, tuple(result[0])


def _describe_model(model: torch.nn.Module, recipe: Recipe) -> dict[str, Any]:
    count = lambda params: sum(p.numel() for p in params)  # noqa: E731
    return {"name": recipe.model.name, "backbone": recipe.model.backbone if recipe.model.name == "sepg" else None,
            "pretrained": recipe.model.pretrained, "parameters": count(model.parameters()),
            "backbone_parameters": count(model.backbone_parameters()),
            "embedding_dim": int(model.num_features), "input_size": [recipe.data.height, recipe.data.width]}


def _check_evaluation(model: torch.nn.Module, protocols: list[Protocol], recipe: Recipe, device: torch.device,
                      images: int) -> dict[str, Any]:
    """Every protocol's sizes, and the features of the first `images` queries and gallery items of the first one
    (unit norm, finite) extracted as the final evaluation does."""
    rows = [{"protocol": p.name, "trials": p.num_trials, "queries": len(p.query_samples(0)),
             "gallery_per_trial": len(p.gallery_samples(0))} for p in protocols]
    if not protocols:
        return {"protocols": rows, "features": "not checked (train.evaluate is false)"}
    first = protocols[0]
    norms = []
    for samples, modality in ((first.query[:images], first.query_modality),
                              (first.gallery[:images], first.gallery_modality)):
        features = extract_features(model, samples, modality, recipe.eval.batch_size, device, flip=recipe.eval.flip)
        norms.extend(np.linalg.norm(features, axis=1).tolist())
    finite = bool(np.all(np.isfinite(norms)))
    return {"protocols": rows, "features": {"images": len(norms), "finite": finite,
                                            "norm_min": round(min(norms), 6), "norm_max": round(max(norms), 6)}}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan: dict[str, Any]) -> str:
    """The dry run as the lines `sepgzoo train --dry-run` prints."""
    m, d, s, t, e, o = (plan[k] for k in ("model", "data", "schedule", "timing", "evaluation", "output"))
    backbone = f" ({m['backbone']})" if m["backbone"] else ""
    lines = [
        f"dry run of recipe {plan['recipe']} on {plan['device']}: every check passed, nothing was written",
        f"  model       {m['name']}{backbone}, pretrained {m['pretrained']}: {m['parameters'] / 1e6:.2f} M parameters "
        f"({m['backbone_parameters'] / 1e6:.2f} M backbone), embedding {m['embedding_dim']}, input "
        f"{m['input_size'][0]} x {m['input_size'][1]}",
        f"  data        {d['dataset']} at {d['root']}: {d['train_ids']} training identities "
        f"({d['held_out_ids']} held out for validation), {d['train_visible']} visible + {d['train_infrared']} "
        f"infrared images",
        f"  one batch   visible {' x '.join(map(str, d['batch']['visible']))}, infrared "
        f"{' x '.join(map(str, d['batch']['infrared']))}, decoded in {d['decode_seconds']} s",
        f"  schedule    {s['images_per_step']} images per step, {s['batches_per_epoch']} steps per epoch, "
        f"{s['epochs']} epochs",
        f"  step        {t['seconds_per_step']} s (median of {t['timed_steps']} after {t['warmup_steps']} warm-up; "
        f"forward, backward and the SGD update)",
        f"  estimate    {_duration(t['epoch_seconds'])} per epoch, {_duration(t['run_seconds'])} for the run "
        f"(data loading, validation and the final evaluation not included)",
    ]
    for row in e["protocols"]:
        lines.append(f"  evaluation  {row['protocol']}: {row['trials']} trial(s) drawn, {row['queries']} queries, "
                     f"{row['gallery_per_trial']} gallery images per trial")
    f = e["features"]
    lines.append(f"  features    {f}" if isinstance(f, str) else
                 f"  features    {f['images']} test images embedded: finite {f['finite']}, norm "
                 f"{f['norm_min']:.4f}..{f['norm_max']:.4f}")
    lines.append(f"  output      {o['run_dir']} (writable; will hold {', '.join(o['files'])})")
    return "\n".join(lines)
