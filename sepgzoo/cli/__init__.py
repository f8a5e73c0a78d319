"""The `sepgzoo` command line: thin commands (parse, call one library function, print), one per module.

User errors (`sepgzoo.errors.UserError`, raised by the library) become a one-line message here and nowhere
else; any other exception keeps its traceback.
"""

import sys
import warnings

import click

from sepgzoo.cli.bench import bench
from sepgzoo.cli.data import data
from sepgzoo.cli.deploy import embed, engine, export, search
from sepgzoo.cli.doctor import doctor
from sepgzoo.cli.evaluate import eval_command, viz
from sepgzoo.cli.gallery import index
from sepgzoo.cli.train import ablate, pretrain, recipes, train
from sepgzoo.cli.zoo import zoo
from sepgzoo.errors import RecipeWarning, UserError, user_message


class Group(click.Group):
    """Reports UserError as a one-line error (exit 1), never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            raise click.ClickException(user_message(err)) from None


_python_format = warnings.formatwarning


def one_line_recipe_warnings(message, category, filename, lineno, line=None) -> str:
    """A `RecipeWarning` is one `warning: ...` line (no source location); every other warning keeps Python's form."""
    if issubclass(category, RecipeWarning):
        return f"warning: {message}\n"
    return _python_format(message, category, filename, lineno, line)


@click.group(cls=Group)
@click.version_option(package_name="sepgzoo")
def main() -> None:
    """SEPG-Net for visible-infrared person re-identification: train, evaluate, export."""
    warnings.formatwarning = one_line_recipe_warnings


for command in (train, eval_command, pretrain, recipes, ablate, viz, bench, data, zoo, export, engine, embed, search,
                index, doctor):
    main.add_command(command)

if __name__ == "__main__":
    sys.exit(main())
