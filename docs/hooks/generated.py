"""MkDocs hook: pages that are generated from the code at build time, so they cannot go stale.

A page asks for a generated block with an HTML comment on a line of its own:

    <!-- generated: recipe-keys -->       every recipe key: default, what it may be, description (one table per section)
    <!-- generated: shipped-recipes -->   every shipped recipe with its base and the comment block that opens its file
    <!-- generated: ablation-rows -->     the rows `sepgzoo ablate` knows: the recipe each comes from and the keys it sets
    <!-- generated: zoo -->               the released weights, as `sepgzoo zoo readme` writes weights/README.md

The blocks come from the functions behind the commands that print the same facts:
`sepgzoo.config.recipe_keys()` (`sepgzoo recipes --keys`); `available_recipes()` and `find_recipe()`
(`sepgzoo recipes`); `sepgzoo.training.ablation.available_rows()`, `find_row()` and `row_overlay()`
(`sepgzoo ablate --rows`); `sepgzoo.hub.zoo.load_manifest()` and `render_readme()` (`sepgzoo zoo readme`).
An unknown marker, a generator that raises, or a page in REQUIRED without its marker fails the build.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    """Text as a code span inside a table cell (Python-Markdown keeps pipes inside backticks literal)."""
    text = " ".join(str(text).split())
    return f"`{text}`" if text else ""


def recipe_keys() -> str:
    from sepgzoo.config import recipe_keys as rows

    sections: dict[str, list[dict[str, str]]] = {}
    for row in rows():
        sections.setdefault(row["key"].split(".", 1)[0], []).append(row)
    out = []
    for section, keys in sections.items():
        out += [f"### `{section}`", "", "| key | default | allowed | description |", "| --- | --- | --- | --- |"]
        out += [f"| `{row['key']}` | {_code(row['default'])} | {_cell(row['allowed'])} | {_cell(row['description'])} |"
                for row in keys]
        out.append("")
    return "\n".join(out)


def _leading_comment(text: str) -> str:
    """The comment block a recipe file opens with, as one line."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def _base(text: str) -> str:
    import yaml

    data = yaml.safe_load(text) or {}
    return str(data.get("base", ""))


def shipped_recipes() -> str:
    from sepgzoo.config import available_recipes, find_recipe

    out = ["| recipe | base | what |", "| --- | --- | --- |"]
    for name in available_recipes():
        text = find_recipe(name).read_text()
        base = _base(text)
        out.append(f"| `{name}` | {_code(base)} | {_cell(_leading_comment(text))} |")
    return "\n".join(out) + "\n"


def _flat(data: dict, prefix: str = "") -> list[str]:
    """{'loss': {'paba': 0.0}} -> ['loss.paba=0.0']: the keys a row sets, as `--set` would write them."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={str(value).lower() if isinstance(value, bool) else value}")
    return out


def ablation_rows() -> str:
    from sepgzoo.training.ablation import available_rows, find_row, row_overlay

    out = ["| row | file | keys it sets over the recipe being ablated |", "| --- | --- | --- |"]
    for row in available_rows():
        _, path = find_row(row)
        keys = ", ".join(f"`{text}`" for text in _flat(row_overlay(path)))
        out.append(f"| `{row}` | `recipes/{path.name}` | {keys} |")
    return "\n".join(out) + "\n"


def zoo() -> str:
    """weights/README.md as `sepgzoo zoo readme` writes it, from its table on, headings one level down."""
    from sepgzoo.hub.zoo import load_manifest, render_readme

    lines = render_readme(load_manifest()).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    return "\n".join("#" + line if line.startswith("## ") else line for line in lines[start:]) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "recipe-keys": recipe_keys,
    "shipped-recipes": shipped_recipes,
    "ablation-rows": ablation_rows,
    "zoo": zoo,
}


#: pages that must hold these blocks: deleting a marker fails the build instead of dropping the table
REQUIRED = {"recipes.md": ("shipped-recipes", "recipe-keys"), "training.md": ("ablation-rows",), "zoo.md": ("zoo",)}


def on_page_markdown(markdown: str, page, config, files) -> str:
    present = set(MARKER.findall(markdown))
    missing = [name for name in REQUIRED.get(page.file.src_path, ()) if name not in present]
    if missing:
        raise PluginError(f"{page.file.src_path}: the generated block(s) {', '.join(missing)} are missing")

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_path}: unknown generated block {name!r}; known: {', '.join(GENERATORS)}")
        try:
            return GENERATORS[name]()
        except Exception as error:  # the build must fail, naming the page and the block
            raise PluginError(f"{page.file.src_path}: generating {name!r} failed: {error!r}") from error

    return MARKER.sub(replace, markdown)
