"""The version of sepgzoo, written once: the package, the wheel (pyproject) and every file it writes read it here."""

__version__ = "0.2.0"
