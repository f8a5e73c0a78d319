"""`sepgzoo doctor`: what this machine has (`environment`), and the GPU self-check of `doctor --gpu`.

The self-check is five named checks (`checks`) of a `CheckConfig` (`config`), run in order by `runner`, which
writes `gpu-report.json` and the markdown summary that `report` renders. `CheckConfig.tiny_config()` runs the same
checks on CPU with the tiny `test_sepg` model, 64 x 32 images and a 12-identity synthetic data set: that is how CI
exercises this package (`doctor --gpu --device cpu --tiny`). Importing this package imports nothing.
"""
