"""`sepgzoo viz curves`: a training run's log.csv as one PNG of training curves."""

import csv
from pathlib import Path

from sepgzoo.errors import UserError
from sepgzoo.training.runs import CsvLog

LOG_NAME = "log.csv"
CURVES_NAME = "curves.png"


def find_log(run: str | Path) -> Path:
    """The log.csv of `run`, which may be a run folder or the log.csv file itself."""
    run = Path(run)
    if not run.exists():
        raise UserError(f"{run} does not exist; expected a run folder written by `sepgzoo train` or its {LOG_NAME}")
    log = run / LOG_NAME if run.is_dir() else run
    if not log.is_file():
        raise UserError(f"{run} has no {LOG_NAME}; expected a run folder written by `sepgzoo train`")
    return log


def read_log(log: str | Path) -> list[dict[str, str]]:
    """The rows of a log.csv (one per epoch); a log without rows is an error naming the file."""
    log = Path(log)
    try:
        rows = CsvLog(log).rows
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read {log} ({err}); expected a CSV log written by `sepgzoo train`") from err
    if not rows:
        raise UserError(f"{log} has no rows; expected one row per finished epoch (has the run trained an epoch?)")
    return rows


def plot_run_curves(run: str | Path, out: str | Path | None = None) -> Path:
    """Plot the log.csv of `run` (folder or file) to `out` (default <run folder>/curves.png)."""
    from sepgzoo.figures.training import training_curves

    log = find_log(run)
    rows = read_log(log)
    return training_curves(rows, Path(out) if out else log.parent / CURVES_NAME, title=log.parent.name)
