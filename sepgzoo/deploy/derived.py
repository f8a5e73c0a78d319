"""Graphs derived from an export's fp32 graphs (INT8 Q/DQ graphs, projected graphs): made in a staged copy of the
export, labelled in their own metadata, recorded in export.json, and published only when every check passed.

The staged copy hard-links the export's files (no copy of large graphs). That is safe only because nothing writes
into a staged file: a file is replaced by a new one (unlinked first), never rewritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sepgzoo.deploy.contract import EXPORT_JSON, METADATA_PREFIX, passed_check, read_export_json
from sepgzoo.errors import UserError
from sepgzoo.utils.atomic import staging_folder, write_json
from sepgzoo.utils.hashing import sha256_file


@contextlib.contextmanager
def staged_export(export_dir: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Yield (a staged copy of the export, its export.json record); the caller adds graphs with `add_graph` and
    writes the record with `write_record`. The copy replaces the export only if the block ends without an error."""
    export_dir = Path(export_dir)
    record = read_export_json(export_dir)
    with staging_folder(export_dir) as staging:
        _link_tree(export_dir, staging)
        yield staging, record


def new_file(staging: Path, name: str) -> Path:
    """A path in the staged export to write a new graph to (a link to an earlier export's file is removed first)."""
    path = staging / name
    path.unlink(missing_ok=True)
    return path


def add_graph(staging: Path, record: dict[str, Any], modality: str, precision: str, name: str,
              parity: dict[str, Any], **metadata: Any) -> None:
    """Label a written graph (its precision, its passed check, `metadata`) and record it in `record`.

    Raises:
        UserError naming the graph, its min cosine, its reference and the threshold when `parity` did not pass:
        the staged export is then dropped and the export left as it was.
    """
    if not passed_check(parity):
        raise UserError(f"{name}: min cosine {parity['min_cosine']} against the {parity['reference']} is below "
                        f"{parity['threshold']}; the export is left as it was")
    label_graph(staging / name, {"precision": precision, "parity": parity, **metadata})
    record["files"][modality][precision] = name
    record.setdefault("parity", {}).setdefault(modality, {})[precision] = parity
    record.setdefault("sha256", {})[name] = sha256_file(staging / name)


def write_record(staging: Path, record: dict[str, Any]) -> None:
    write_json(staging / EXPORT_JSON, record)


def label_graph(path: Path, entries: dict[str, Any]) -> None:
    """Set `sepgzoo.<key>` metadata entries of a graph (runtimes read them), written as a new file."""
    import onnx

    model = onnx.load(str(path))
    existing = {entry.key: entry for entry in model.metadata_props}
    for key, value in entries.items():
        entry = existing.get(METADATA_PREFIX + key) or model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, value if isinstance(value, str) else json.dumps(value)
    onnx.save(model, str(path.with_suffix(".labelled")))
    os.replace(path.with_suffix(".labelled"), path)  # a new file, never a write into one that may be shared


def _link_tree(source: Path, target: Path) -> None:
    """Every file of an export folder hard-linked into the staging folder."""
    for item in source.iterdir():
        if item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, target / item.name, copy_function=os.link)
        else:
            os.link(item, target / item.name)
