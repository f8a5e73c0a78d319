"""Shipped training recipes (YAML); installed as the `sepgzoo.recipes` package so `--recipe NAME` works anywhere."""
