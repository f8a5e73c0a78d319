"""sepgzoo: SEPG-Net for visible-infrared person re-identification (train, evaluate, export)."""

__version__ = "0.1.0"
