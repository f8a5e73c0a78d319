"""The `sepgzoo` command line: a thin click group over the library."""

import click


@click.group()
@click.version_option(package_name="sepgzoo")
def main() -> None:
    """SEPG-Net for visible-infrared person re-identification."""
