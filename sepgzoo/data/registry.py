"""The data set registry: one `DatasetSpec` per data set, registered by name by the data set's own module.

A data set is one module under `sepgzoo/data/` (`sysu.py`, `regdb.py`, `llcm.py`) holding its reader, its
protocols, its known counts and its defaults, and ending in a `register_dataset(DatasetSpec(...))` call;
`sepgzoo/data/__init__.py` imports those modules, so every built-in data set is registered as soon as any
`sepgzoo.data` module is imported. Recipes (`data.dataset`), `sepgzoo eval` and `sepgzoo data stats/check`
find a data set only here. A leaf: this module imports nothing of the package but `sepgzoo.errors`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sepgzoo.errors import UserError


@dataclass(frozen=True)
class DatasetSpec:
    """Everything sepgzoo needs to know about one data set.

    Attributes:
        name: registry name, what a recipe writes as `data.dataset` (lower case).
        reader: `reader(root, **options)` -> the parsed data set: an object with `.train` (a list of
            `Sample`, identities relabelled 0..C-1) and a `.name` equal to `name` (protocols check it),
            plus whatever its protocols read (test lists, ...).
        protocols: protocol name -> builder `(parsed data set, **options) -> Protocol` (a Protocol subclass
            or `protocols.with_fixed_options(...)`). Names are unique over all data sets.
        settings: `settings(eval_section)` -> [(protocol name, options), ...]: what `sepgzoo eval` runs for
            a recipe's `eval` section (modes, shots, directions, trials).
        title: name in messages ("SYSU-MM01"); defaults to `name`.
        aliases: other accepted spellings (`sysu_mm01`).
        recipe_options: `data.*` recipe keys passed to `reader` as keyword arguments (`trial`, `skip_unpaired`).
        split_option: the recipe key that selects a train/test split (RegDB: `trial`); a model is only
            evaluated on the split it was trained on. None: one split.
        known_counts: `known_counts(root)` -> rows of `count_row(...)` for `sepgzoo data check`; None: no check.
        image_files: `image_files(root)` -> every image file the reader lists (training and test, both
            modalities), each once, which `sepgzoo data check` decodes; None: the check compares counts only.
        stats_protocol: `stats_protocol(root, mode=, shot=, sampler=, trial=, direction=)` -> (parsed data
            set, protocol, trial index) for `sepgzoo data stats` (options it does not use are None or the
            command's defaults); None: the first protocol of `protocols`, trial `trial or 0`.
        needs_root: False for the generated synthetic data set: written on first use to `data.root` or the
            cache (`sepgzoo.data.sources.synthetic_root`), so the recipe needs no `data.root`.
    """

    name: str
    reader: Callable[..., Any]
    protocols: Mapping[str, Callable[..., Any]]
    settings: Callable[[Any], list[tuple[str, dict[str, Any]]]]
    title: str = ""
    aliases: tuple[str, ...] = ()
    recipe_options: tuple[str, ...] = ("skip_unpaired",)
    split_option: str | None = None
    known_counts: Callable[[Path], list[dict[str, Any]]] | None = None
    image_files: Callable[[Path], list[Path]] | None = None
    stats_protocol: Callable[..., tuple[Any, Any, int]] | None = None
    needs_root: bool = True

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.name)


_SPECS: dict[str, DatasetSpec] = {}
_ALIASES: dict[str, str] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Register a data set under `spec.name` and its aliases; recipes then accept `data.dataset: <name>`.

    Raises:
        ValueError: the name, an alias or a protocol name is already registered by another data set.
    """
    keys = [spec.name.lower(), *(a.lower() for a in spec.aliases)]
    taken = [k for k in keys if k in _SPECS or k in _ALIASES]
    clashing = sorted(set(spec.protocols) & {p for s in _SPECS.values() for p in s.protocols})
    if taken or clashing:
        raise ValueError(f"data set {spec.name!r}: already registered: {taken + clashing}")
    _SPECS[keys[0]] = spec
    _ALIASES.update({alias: keys[0] for alias in keys[1:]})
    return spec


def dataset_names() -> list[str]:
    """Registered data set names, sorted (aliases left out)."""
    return sorted(_SPECS)


def get_dataset(name: str) -> DatasetSpec:
    """The spec of a registered data set, by name or alias (any case); a UserError with a did-you-mean otherwise."""
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in _SPECS:
        hint = _hint(key, list(_SPECS) + list(_ALIASES))
        raise UserError(f"unknown data set {name!r}{hint}; registered: {', '.join(dataset_names())}")
    return _SPECS[key]


def build_dataset(name: str, root: str | Path, **options) -> Any:
    """Parse a data set by registry name with its reader.

    Args:
        name: a registered name or alias ("sysu", "sysu_mm01", "regdb", "llcm", ...).
        root: data set root directory.
        **options: reader options, e.g. `trial=3` for RegDB, `skip_unpaired=True`.

    Example:
        >>> ds = build_dataset("regdb", "/data/RegDB", trial=1)  # doctest: +SKIP
        >>> len(ds.train), ds.train[0].modality  # doctest: +SKIP
        (4120, 'visible')
    """
    spec = get_dataset(name)
    accepted = list(inspect.signature(spec.reader).parameters)[1:]  # everything after the root
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(f"unknown option(s) {unknown} for dataset {name!r}; expected some of {accepted}")
    return spec.reader(root, **options)


def find_protocol(name: str) -> tuple[DatasetSpec, Callable[..., Any]]:
    """(owning data set, builder) of a registered protocol name; UserError listing the names otherwise."""
    for spec in _SPECS.values():
        if name in spec.protocols:
            return spec, spec.protocols[name]
    names = sorted(p for spec in _SPECS.values() for p in spec.protocols)
    raise UserError(f"unknown protocol {name!r}{_hint(name, names)}; expected one of {names}")


def count_row(quantity: str, expected: int | None, found: int, verified: bool = True) -> dict[str, Any]:
    """One row of `sepgzoo data check`: status ok, DIFFERS (a verified count), an unverified difference, or info."""
    if expected is None:
        status = "info"
    elif found == expected:
        status = "ok"
    else:
        status = "DIFFERS" if verified else "differs (reported figure, unverified)"
    return {"quantity": quantity, "expected": expected, "found": found, "status": status}


def _hint(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
