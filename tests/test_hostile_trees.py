"""Hostile data set trees: each is read as documented or refused with one line naming the file and what is wrong."""

import shutil

import pytest

from sepgzoo.data.registry import build_dataset
from sepgzoo.errors import UserError


@pytest.fixture
def sysu(sysu_root, tmp_path):
    return shutil.copytree(sysu_root, tmp_path / "SYSU-MM01")


def _ids(root, name):
    return (root / "exp" / name).read_text().splitlines()[0]


def test_stray_spaces_and_a_trailing_comma_in_an_id_list_are_read(sysu):
    original = build_dataset("sysu", sysu)
    line = _ids(sysu, "train_id.txt")
    (sysu / "exp" / "train_id.txt").write_text(" " + line.replace(",", " , ") + ",\n")
    assert build_dataset("sysu", sysu).train == original.train


def test_a_test_identity_listed_for_training_is_a_leak_and_refused(sysu):
    test_id = _ids(sysu, "test_id.txt").split(",")[0]
    (sysu / "exp" / "train_id.txt").write_text(_ids(sysu, "train_id.txt") + f",{test_id}\n")
    with pytest.raises(UserError, match=rf"identities \[{int(test_id)}\] are listed in .*train_id.txt.* and in "
                                        r".*test_id.txt: a test identity must never be trained on"):
        build_dataset("sysu", sysu)


def test_a_duplicated_identity_is_refused_naming_the_list(sysu):
    first = _ids(sysu, "train_id.txt").split(",")[0]
    (sysu / "exp" / "train_id.txt").write_text(_ids(sysu, "train_id.txt") + f",{first}\n")
    with pytest.raises(UserError, match=rf"train_id.txt lists identities \[{int(first)}\] more than once"):
        build_dataset("sysu", sysu)


def test_a_missing_camera_folder_is_named(sysu):
    shutil.rmtree(sysu / "cam3")
    with pytest.raises(UserError, match=r"SYSU-MM01 camera folder not found: .*cam3"):
        build_dataset("sysu", sysu)


def test_an_identity_in_one_modality_only_is_refused_or_skipped_on_request(sysu):
    pid = int(_ids(sysu, "train_id.txt").split(",")[0])
    for cam in ("cam3", "cam6"):  # the infrared cameras
        shutil.rmtree(sysu / cam / f"{pid:04d}", ignore_errors=True)
    with pytest.raises(UserError, match=str(pid)):
        build_dataset("sysu", sysu)
    kept = build_dataset("sysu", sysu, skip_unpaired=True)
    assert kept.train and len({s.pid for s in kept.train}) == len(_ids(sysu, "train_id.txt").split(",")) + len(
        _ids(sysu, "val_id.txt").split(",")) - 1


@pytest.mark.parametrize("line, problem", [("Visible/1/a.bmp", "missing label"), ("Visible/1/a.bmp 3 extra", "extra")])
def test_regdb_idx_lines_with_a_missing_label_or_an_extra_column_are_refused_with_their_line(regdb_root, tmp_path,
                                                                                             line, problem):
    root = shutil.copytree(regdb_root, tmp_path / "RegDB")
    idx = root / "idx" / "train_visible_1.txt"
    lines = idx.read_text().splitlines()
    lines[2] = line
    idx.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"train_visible_1.txt:3: .*expected '<relative path> <integer label>'"):
        build_dataset("regdb", root, trial=1)
