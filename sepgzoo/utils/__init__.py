"""The lowest layer: small helpers every part of the package may import (atomic files and staging folders, the
cache folder, hashing, device resolution, timing, uint8 -> float). Nothing here imports anything of the package
above `sepgzoo.errors`."""
