"""Where evaluation results are written. Records are append-only: no command rewrites what an earlier one recorded.

- `metrics.json` (and the metrics in `model.json`): the training's own evaluation of its last epoch, written
  once, by `sepgzoo train`. This is what `sepgzoo zoo publish` takes.
- `evals/<what was evaluated>.json`: every later `sepgzoo eval`, named by its protocols, sampler, trials, split,
  flip and checkpoint (epoch and weights hash); a second evaluation with the same name gets `.2`, `.3`, ...
"""

from pathlib import Path
from typing import Any

from sepgzoo.errors import UserError
from sepgzoo.evaluation.report import summarise
from sepgzoo.hub.layout import EVALS_FOLDER, TRAINING_RECORD
from sepgzoo.utils.atomic import write_new_json


def model_folder(path: str | Path) -> Path:
    """The folder of a run or model file."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def write_training_record(run_dir: str | Path, report: dict[str, Any]) -> Path:
    """The training's evaluation: `metrics.json` and the metrics in `model.json`, written once.

    Raises:
        UserError: the run already holds its training record (it is never replaced).
    """
    from sepgzoo.hub.checkpoint import update_meta  # training always has torch; `eval --model` never gets here

    path = Path(run_dir) / TRAINING_RECORD
    try:
        write_new_json(path, report)
    except FileExistsError:
        raise UserError(f"{path} already holds this run's training evaluation and is never replaced; evaluate "
                        f"again with `sepgzoo eval --checkpoint {run_dir}`, which writes into "
                        f"{Path(run_dir) / EVALS_FOLDER}/") from None
    update_meta(run_dir, metrics=summarise(report["results"]))
    return path


def evaluation_name(report: dict[str, Any]) -> str:
    """What was evaluated, as a file name: protocols, sampler, trials, split, flip, epoch and weights hash.

    Example: `sysu_all_single+sysu_indoor_single.agw.trials10.flip-off.epoch120-3fa9c1b2`; an export ends in its
    precision, device and graph hash instead (`...flip-off.int8-cpu-5be0a7d1`).
    """
    results = report["results"]
    options = next(iter(results.values()))["options"]
    parts = ["+".join(results)]
    if "sampler" in options:
        parts.append(str(options["sampler"]))
    parts.append(f"trials{options.get('num_trials', len(next(iter(results.values()))['trials']))}")
    if "split" in options:
        parts.append(f"split{options['split']}")
    parts.append("flip-on" if report["flip_tta"] else "flip-off")
    if options.get("rerank"):
        rerank = options["rerank"]
        parts.append(f"rerank-k1-{rerank['k1']}-k2-{rerank['k2']}-lambda{rerank['lambda_value']}")
    artifact = report.get("artifact")
    if artifact is None:
        parts.append(f"epoch{report.get('epoch')}-{report['weights_sha256'][:8]}")
    else:  # a deployed export: its precision, where it ran, and its own graphs (sha256 of the visible one)
        parts.append(f"{artifact['precision']}-{artifact['device']}-{(artifact['sha256']['visible'] or '')[:8]}")
    return ".".join(parts)


def write_evaluation_record(path: str | Path, report: dict[str, Any]) -> Path:
    """A later evaluation of a run, written beside its training record in `evals/`, never over any file."""
    folder = model_folder(path) / EVALS_FOLDER
    name = evaluation_name(report)
    for number in range(1, 10_000):
        record = folder / (f"{name}.json" if number == 1 else f"{name}.{number}.json")
        try:
            write_new_json(record, report)
            return record
        except FileExistsError:
            continue
    raise UserError(f"{folder} already holds 9,999 evaluations named {name}; move some elsewhere")
