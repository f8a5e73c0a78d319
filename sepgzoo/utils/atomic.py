"""Atomic file writes (a temporary file beside the target, flushed, then renamed over it) and the JSON reader."""

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sepgzoo.errors import UserError

#: errors of the file system rather than of the program: a full, read-only or missing place to write
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR,
                errno.EEXIST}


@contextlib.contextmanager
def atomic_path(path: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` in one rename, on error it is removed.

    A process killed at any moment leaves either the old file or the new one, never half of one. With
    `replace=False` the file must be new (an append-only record): FileExistsError if `path` exists, also when
    another process creates it at the same moment (a hard link, unlike a rename, never replaces).

    Example:
        >>> with atomic_path("run/last.pt") as tmp:
        ...     torch.save(state, tmp)
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except OSError as err:
        if err.errno not in WRITE_ERRORS or (not replace and isinstance(err, FileExistsError)):
            raise
        kept = "the previous file is intact" if path.is_file() else "nothing was written"
        raise UserError(f"cannot write {path}: {err.strerror} ({kept})") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Atomically write `data` as indented JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_new_json(path: str | Path, data: Any) -> None:
    """Atomically write `data` as indented JSON to a file that must not exist yet (FileExistsError otherwise)."""
    with atomic_path(path, replace=False) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path, expected_format: str, hint: str = "") -> dict[str, Any]:
    """A JSON file whose `format` field must be `expected_format`; UserError naming the file otherwise."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}){hint}") from err
    if not isinstance(record, dict) or record.get("format") != expected_format:
        found = record.get("format") if isinstance(record, dict) else None
        raise UserError(f"{path} has format {found!r}, expected {expected_format!r}{hint}")
    return record


@contextlib.contextmanager
def staging_folder(output: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside `output`; on success it replaces `output` (an earlier one is swapped out and
    removed), on failure it is removed and `output` is left as it was. For outputs that are whole folders (an
    export, a generated data set): readers see the old folder or the new one, never half of one."""
    output = Path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.staging."))
    except OSError as err:
        raise UserError(f"cannot write {output}: {err.strerror}") from None
    try:
        yield staging
        previous = output.with_name(f".{output.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)  # left by an interrupted earlier swap
        if output.exists():
            os.replace(output, previous)
        os.replace(staging, output)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
