"""`sepgzoo viz curves`: a run's log.csv (as CsvLog writes it) plotted to one PNG."""

import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from sepgzoo.cli import main
from sepgzoo.errors import UserError
from sepgzoo.figures import training as plots
from sepgzoo.figures.training import numeric_series, training_curves
from sepgzoo.training.curves import plot_run_curves, read_log
from sepgzoo.training.runs import CsvLog

LN_CLASSES = round(math.log(10), 4)


def epoch_row(epoch: int, grads: bool, validation: bool) -> dict:
    row = {"epoch": epoch, "lr": 0.01 / epoch, "backbone_lr": 0.001 / epoch, "id_specific": 2.0 / epoch,
           "id_parts": 1.5 / epoch, "paba": 0.3 / epoch, "total": 3.8 / epoch, "ce_specific": 2.3 / epoch,
           "ce_parts": 2.2 / epoch, "acc_specific": 0.2 * epoch, "acc_parts": 0.15 * epoch, "ln_classes": LN_CLASSES,
           "images_per_s": 100.0, "seconds": 1.5, "world_size": 1}
    if grads:
        row |= {"grad_id_specific": 0.5 * epoch, "grad_paba": 0.01 * epoch}
    if validation and epoch % 2 == 0:
        row |= {"val_R1": 0.1 * epoch, "val_mAP": 0.08 * epoch}
    return row


def write_run(folder: Path, epochs: int = 4, grads: bool = False, validation: bool = True) -> Path:
    folder.mkdir(parents=True)
    log = CsvLog(folder / "log.csv")
    for epoch in range(1, epochs + 1):
        log.append(epoch_row(epoch, grads, validation))
    return folder


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_numeric_series_skips_cells_of_epochs_before_a_column_appeared(tmp_path: Path) -> None:
    rows = read_log(write_run(tmp_path / "run") / "log.csv")
    assert rows[0]["val_R1"] == ""
    epochs, values = numeric_series(rows, "val_R1")
    assert epochs == [2.0, 4.0]
    assert values == pytest.approx([0.2, 0.4])
    assert numeric_series(rows, "lr") == ([1.0, 2.0, 3.0, 4.0], pytest.approx([0.01, 0.005, 0.01 / 3, 0.0025]))
    assert numeric_series(rows, "grad_paba") == ([], [])


def test_grad_panel_only_when_grad_columns_exist(tmp_path: Path) -> None:
    without = plot_run_curves(write_run(tmp_path / "plain"))
    with_grads = plot_run_curves(write_run(tmp_path / "grads", grads=True, validation=False))
    assert without == tmp_path / "plain" / "curves.png"
    (width_a, height_a), (width_b, height_b) = png_size(without), png_size(with_grads)
    assert height_b > height_a
    assert width_b * height_b > width_a * height_a


def test_panels_hold_the_logged_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    rows = read_log(write_run(tmp_path / "run", grads=True) / "log.csv")
    training_curves(rows, tmp_path / "unused.png")
    labels = [ax.get_legend_handles_labels()[1] for ax in figures[0].axes]
    assert labels == [["id_specific", "id_parts", "paba", "total"], ["ce_specific", "ce_parts", "ln C (uniform guess)"],
                      ["acc_specific", "acc_parts", "val_R1", "val_mAP"], ["lr", "backbone_lr"],
                      ["grad_id_specific", "grad_paba"]]
    loss_ax, ce_ax, acc_ax, lr_ax, grad_ax = figures[0].axes
    assert ce_ax.lines[-1].get_ydata()[0] == pytest.approx(LN_CLASSES)
    assert list(acc_ax.lines[2].get_ydata()) == pytest.approx([20.0, 40.0])
    assert lr_ax.get_yscale() == grad_ax.get_yscale() == "log"


def test_cli_writes_png_and_prints_its_path(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", grads=True)
    result = CliRunner().invoke(main, ["viz", "curves", str(run)])
    assert result.exit_code == 0, result.output
    assert str(run / "curves.png") in result.output
    png_size(run / "curves.png")
    out = tmp_path / "figs" / "mine.png"
    result = CliRunner().invoke(main, ["viz", "curves", str(run / "log.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    png_size(out)


@pytest.mark.parametrize("case", ["missing", "no_log", "header_only", "empty_file"])
def test_cli_errors_name_the_file(tmp_path: Path, case: str) -> None:
    run = tmp_path / "run"
    if case != "missing":
        run.mkdir()
    if case == "header_only":
        (run / "log.csv").write_text("epoch,lr,total\n")
    if case == "empty_file":
        (run / "log.csv").write_text("")
    result = CliRunner().invoke(main, ["viz", "curves", str(run)])
    assert result.exit_code != 0
    named = str(run / "log.csv") if case in ("header_only", "empty_file") else str(run)
    assert named in result.output
    assert "Traceback" not in result.output
    with pytest.raises(UserError, match="log.csv|does not exist"):
        plot_run_curves(run)
