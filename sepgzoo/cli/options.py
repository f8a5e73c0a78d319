"""Help texts and options shared by several commands."""

SET_HELP = "Override a recipe key, e.g. --set train.epochs=5 (repeatable; values are YAML scalars or lists)."
