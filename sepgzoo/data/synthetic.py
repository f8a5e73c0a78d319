"""Synthetic VI-ReID data in the official SYSU-MM01 / RegDB / LLCM layouts, for tests and the demo.

People are drawn with numpy as flat part maps (head, torso, arms, legs, shoes, hat, bag). An identity
is a unique combination of cues that both modalities show: body width, leg length, the geometry of the
upper-clothing pattern (stripes, blocks, bands), the lower garment (trousers, shorts, skirt), a bag and
a hat. Colours exist only in visible images (random per identity, with a per-camera colour cast);
infrared images are single-channel "heat" maps (warm skin, clothing at identity-specific levels
unrelated to its colour, a cold bag) on a dark background. Cameras differ in scale, position, blur,
noise, background and occlusion, and every image jitters pose, mirroring and brightness.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from sepgzoo.errors import UserError

HEIGHT, WIDTH = 128, 64
WIDTHS = (0.095, 0.125, 0.155)  # torso half-width, in units of the person's height
LEG_RATIOS = (0.42, 0.52)  # fraction of the height taken by the legs
TOP_PATTERNS = ("solid", "hstripes2", "hstripes4", "vstripes", "checker", "halves_v", "diagonal",
                "halves_h", "chest_band", "centre_band")
BOTTOMS = ("trousers", "shorts", "skirt")
BAGS = ("none", "shoulder", "backpack", "handheld")
# part ids of the part map
BG, SKIN, TOP_A, TOP_B, BOTTOM, SHOES, BAG, HAT = range(8)
LAYOUTS = ("sysu", "regdb", "llcm")
#: every shared-cue tuple (width, leg ratio, top pattern, bottom, bag, hat): 1440 possible synthetic people
COMBOS = tuple(product(WIDTHS, LEG_RATIOS, TOP_PATTERNS, BOTTOMS, BAGS, (False, True)))


@dataclass(frozen=True)
class Camera:
    """How one camera sees people: modality, scale range, blur, noise, occlusion and background style."""

    infrared: bool
    scale: tuple[float, float]
    blur: float
    noise: float
    occlusion: float
    background: tuple[float, float, float]
    layout_seed: int


SYSU_CAMERAS = {
    1: Camera(False, (0.84, 0.96), 0.3, 0.015, 0.10, (0.80, 0.74, 0.62), 1),
    2: Camera(False, (0.78, 0.94), 0.6, 0.025, 0.20, (0.55, 0.60, 0.70), 2),
    3: Camera(True, (0.78, 0.94), 0.8, 0.040, 0.20, (0.18, 0.18, 0.18), 2),  # same room as cam 2
    4: Camera(False, (0.62, 0.84), 1.0, 0.035, 0.15, (0.50, 0.56, 0.45), 4),
    5: Camera(False, (0.58, 0.80), 1.2, 0.045, 0.25, (0.42, 0.58, 0.36), 5),
    6: Camera(True, (0.62, 0.84), 1.0, 0.050, 0.15, (0.10, 0.10, 0.10), 6),
}
REGDB_CAMERAS = {1: Camera(False, (0.80, 0.94), 0.7, 0.03, 0.10, (0.45, 0.47, 0.50), 11),
                 2: Camera(True, (0.80, 0.94), 1.3, 0.04, 0.10, (0.15, 0.15, 0.15), 11)}


@dataclass(frozen=True)
class Identity:
    """Appearance of one synthetic person: shared geometric cues plus per-modality colours/heat levels."""

    width: float
    leg_ratio: float
    top: str
    bottom: str
    bag: str
    hat: bool
    colours: np.ndarray  # [8, 3] visible RGB per part id
    heat: np.ndarray  # [8] infrared intensity per part id

    @property
    def combo(self) -> tuple:
        """The shared-cue tuple that defines this person (an element of COMBOS)."""
        return self.width, self.leg_ratio, self.top, self.bottom, self.bag, self.hat


def make_identities(count: int, seed: int, exclude: Collection[tuple] = ()) -> list[Identity]:
    """`count` identities whose shared-cue tuples (shape, pattern, garment, bag, hat) are all distinct.

    `exclude` removes cue tuples from the choice (e.g. those of an evaluation data set, see `identity_combos`);
    without it the identities are exactly those of the data sets written so far.
    """
    excluded = set(exclude)
    combos = [combo for combo in COMBOS if combo not in excluded]
    if count > len(combos):
        reason = f" ({len(COMBOS) - len(combos)} of {len(COMBOS)} cue combinations excluded)" if excluded else ""
        raise UserError(f"--ids {count} is too many for synthetic data; expected at most {len(combos)}{reason}")
    rng = np.random.default_rng([seed, 7])
    picks = rng.choice(len(combos), size=count, replace=False)
    return [_identity(combos[i], np.random.default_rng([seed, 11, n])) for n, i in enumerate(picks)]


def identity_combos(ids: int, seed: int) -> set[tuple]:
    """Cue tuples of all identities (train, val and test) of the synthetic data sets written with (ids, seed)."""
    return {person.combo for person in make_identities(ids, seed)}


def _identity(combo: tuple, rng: np.random.Generator) -> Identity:
    width, leg_ratio, top, bottom, bag, hat = combo
    colours = rng.uniform(0.05, 0.95, size=(8, 3))
    colours[TOP_B] = 1.0 - colours[TOP_A] + rng.uniform(-0.1, 0.1, 3)  # high-contrast second colour
    colours[SKIN] = np.array([0.85, 0.68, 0.55]) * rng.uniform(0.55, 1.1)
    colours[SHOES] = rng.uniform(0.05, 0.3, 3)
    heat = np.zeros(8)
    heat[SKIN] = rng.uniform(0.85, 0.97)
    heat[TOP_A] = rng.uniform(0.35, 0.55)
    heat[TOP_B] = heat[TOP_A] + rng.choice([-1, 1]) * rng.uniform(0.25, 0.35) + 0.15
    heat[BOTTOM] = rng.uniform(0.4, 0.7)
    heat[SHOES], heat[BAG], heat[HAT] = rng.uniform(0.25, 0.35), rng.uniform(0.08, 0.2), rng.uniform(0.3, 0.5)
    return Identity(width, leg_ratio, top, bottom, bag, bool(hat), np.clip(colours, 0, 1), np.clip(heat, 0, 1))


_PATTERNS = {
    "solid": lambda u, v: np.zeros(u.shape, dtype=bool),
    "hstripes2": lambda u, v: (np.floor(v * 4) % 2) == 1,
    "hstripes4": lambda u, v: (np.floor(v * 8) % 2) == 1,
    "vstripes": lambda u, v: (np.floor(u * 4) % 2) == 1,
    "checker": lambda u, v: ((np.floor(u * 2) + np.floor(v * 3)) % 2) == 1,
    "halves_v": lambda u, v: v > 0.5,
    "diagonal": lambda u, v: (np.floor((u + v) * 2.5) % 2) == 1,
    "halves_h": lambda u, v: u > 0.5,
    "chest_band": lambda u, v: (v > 0.3) & (v < 0.6),
    "centre_band": lambda u, v: (u > 0.36) & (u < 0.64),
}
_GRID_Y, _GRID_X = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
_SHADE = np.broadcast_to(np.linspace(0.85, 1.1, WIDTH, dtype=np.float32)[None, :, None], (HEIGHT, WIDTH, 1))


def _pattern(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Second-colour mask of an upper-clothing pattern in torso coordinates u, v in [0, 1]."""
    return _PATTERNS[name](u, v)


def draw_parts(person: Identity, rng: np.random.Generator, scale: float, centre_x: float) -> np.ndarray:
    """Part map [HEIGHT, WIDTH] (int8 part ids) of one person standing in the frame with a jittered pose."""
    height = scale * HEIGHT
    top = (HEIGHT - height) * rng.uniform(0.2, 0.9)
    py = (_GRID_Y - top) / height
    px = (_GRID_X - centre_x) / height
    if rng.random() < 0.5:  # facing the other way: everything mirrored
        px = -px
    parts = np.zeros((HEIGHT, WIDTH), dtype=np.int8)
    w, hip = person.width, 1.0 - person.leg_ratio
    _draw_legs(parts, px, py, person, hip, rng.uniform(0.0, 0.03))
    swing = rng.uniform(-0.02, 0.02)
    for side in (-1, 1):  # arms, sleeves then hands
        arm = (px * side > w) & (px * side < w + 0.045) & (py > 0.17) & (py < hip + 0.02 + swing * side)
        parts[arm] = TOP_A
        parts[arm & (py > hip - 0.06 + swing * side)] = SKIN
    torso = (np.abs(px) <= w) & (py >= 0.16) & (py <= hip)
    u, v = (px + w) / (2 * w), (py - 0.16) / (hip - 0.16)
    parts[torso] = np.where(_pattern(person.top, u, v), TOP_B, TOP_A)[torso]
    parts[((px / 0.055) ** 2 + ((py - 0.09) / 0.075) ** 2) <= 1] = SKIN  # head
    if person.hat:
        parts[(np.abs(px) < 0.065) & (py > 0.0) & (py < 0.06)] = HAT
        parts[(np.abs(px - 0.03) < 0.07) & (py >= 0.05) & (py < 0.07)] = HAT
    _draw_bag(parts, px, py, person.bag, w, hip)
    return parts


def _draw_legs(parts: np.ndarray, px: np.ndarray, py: np.ndarray, person: Identity, hip: float,
               spread: float) -> None:
    legs = (py > hip) & (py < 0.97) & (np.abs(px) < person.width * 0.9 + spread) & (np.abs(px) > 0.008 + spread)
    parts[legs] = BOTTOM
    if person.bottom == "shorts":
        parts[legs & (py > hip + 0.45 * person.leg_ratio)] = SKIN
    elif person.bottom == "skirt":
        flare = person.width * (1.0 + 0.9 * (py - hip) / person.leg_ratio)
        skirt = (py > hip) & (py < hip + 0.55 * person.leg_ratio) & (np.abs(px) < flare)
        parts[legs & ~skirt] = SKIN
        parts[skirt] = BOTTOM
    parts[(py >= 0.95) & (py <= 1.0) & (np.abs(px) < person.width * 0.9 + spread + 0.01)
          & (np.abs(px) > spread)] = SHOES


def _draw_bag(parts: np.ndarray, px: np.ndarray, py: np.ndarray, bag: str, w: float, hip: float) -> None:
    if bag == "shoulder":  # strap across the chest, bag at the right hip
        strap = (np.abs((px + w) / (2 * w) - (py - 0.16) / (hip - 0.16)) < 0.09) & (np.abs(px) <= w) & (py > 0.16)
        parts[strap & (py < hip)] = BAG
        parts[(px > w - 0.02) & (px < w + 0.11) & (py > hip - 0.12) & (py < hip + 0.04)] = BAG
    elif bag == "backpack":  # sticks out on both sides above the waist
        parts[(np.abs(px) > w + 0.045) & (np.abs(px) < w + 0.085) & (py > 0.18) & (py < hip - 0.05)] = BAG
        parts[(np.abs(px) < w) & (py > 0.16) & (py < 0.2)] = BAG
    elif bag == "handheld":  # a box low on the left
        parts[(px < -w - 0.01) & (px > -w - 0.12) & (py > hip + 0.02) & (py < hip + 0.16)] = BAG


def _background(cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Camera-specific scene (fixed layout per camera, small per-image jitter) as float [H, W, 3]."""
    layout = np.random.default_rng([cam.layout_seed, 3])
    base = np.asarray(cam.background, dtype=np.float32)
    ramp = np.linspace(-0.12, 0.12, HEIGHT, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(base + ramp, (HEIGHT, WIDTH, 3)).copy()
    for _ in range(4):  # furniture / walls / lamps
        y0, x0 = layout.integers(0, HEIGHT - 20), layout.integers(-10, WIDTH - 10)
        h, w = layout.integers(10, 50), layout.integers(8, 30)
        shade = layout.uniform(0.0, 0.9 if not cam.infrared else 0.45, 3 if not cam.infrared else 1)
        img[max(y0, 0):y0 + h, max(x0, 0):x0 + w] = shade
    return np.roll(img, int(rng.integers(-4, 5)), axis=1) * rng.uniform(0.85, 1.15)


def render(person: Identity, cam: Camera, rng: np.random.Generator) -> Image.Image:
    """One image of `person` through `cam`: RGB for visible cameras, single-channel "L" for infrared ones."""
    scale = rng.uniform(*cam.scale)
    parts = draw_parts(person, rng, scale, WIDTH / 2 + rng.uniform(-6, 6))
    img = _background(cam, rng)
    body = parts != BG
    if cam.infrared:
        img = img.mean(2, keepdims=True)
        img[body] = person.heat[parts[body]][:, None] * rng.uniform(0.9, 1.1)
    else:
        cast = np.asarray(cam.background, dtype=np.float32) * 0.3 + 0.7 * rng.uniform(0.85, 1.0)
        img[body] = person.colours[parts[body]] * cast
        img[body] *= _SHADE[body]
    _occlude(img, cam, rng)
    img = np.clip(img + cam.noise * rng.standard_normal(img.shape, dtype=np.float32), 0.0, 1.0)
    pixels = (img[..., 0] if cam.infrared else img) * 255.0
    return Image.fromarray(pixels.astype(np.uint8)).filter(ImageFilter.GaussianBlur(cam.blur * rng.uniform(0.6, 1.4)))


def _occlude(img: np.ndarray, cam: Camera, rng: np.random.Generator) -> None:
    if rng.random() >= cam.occlusion:
        return
    h = int(HEIGHT * rng.uniform(0.12, 0.3))
    if rng.random() < 0.7:  # an obstacle in front of the legs
        img[HEIGHT - h:] = rng.uniform(0.1, 0.6, img.shape[2])
    else:  # a passer-by or pillar at one side
        w = int(WIDTH * rng.uniform(0.2, 0.35))
        cols = slice(0, w) if rng.random() < 0.5 else slice(WIDTH - w, WIDTH)
        img[:, cols] = rng.uniform(0.1, 0.6, img.shape[2])


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        image.save(path, quality=90)
    else:
        image.save(path)


def _images(person: Identity, cam: Camera, count: int, seed: int, key: tuple[int, ...]) -> list[Image.Image]:
    return [render(person, cam, np.random.default_rng([seed, *key, n])) for n in range(count)]


def _split_ids(pids: list[int], rng: np.random.Generator) -> tuple[list[int], list[int], list[int]]:
    """SYSU-style split: 1/3 test, 1/6 val, the rest train (each list ascending)."""
    shuffled = list(rng.permutation(pids))
    n_test, n_val = max(2, len(pids) // 3), max(1, len(pids) // 6)
    test, val, train = shuffled[:n_test], shuffled[n_test:n_test + n_val], shuffled[n_test + n_val:]
    return sorted(map(int, train)), sorted(map(int, val)), sorted(map(int, test))


def _sysu_cameras(rng: np.random.Generator) -> list[int]:
    """Cameras one person appears in: indoor people in cams 1-3, most people outdoors in 4-6."""
    indoor = rng.random() < 0.6
    cams = [c for c, p in ((1, indoor), (2, indoor), (3, indoor and rng.random() < 0.9),
                           (4, rng.random() < 0.9), (5, rng.random() < 0.9), (6, rng.random() < 0.9)) if p]
    if not {1, 2, 4, 5} & set(cams):
        cams.append(4)
    if not {3, 6} & set(cams):
        cams.append(6)
    return sorted(cams)


def write_sysu(out: Path, ids: int, seed: int, images_per_camera: int) -> dict:
    """SYSU-MM01 tree: cam1..cam6/PPPP/NNNN.jpg (infrared as 1-channel JPEG) and exp/{train,val,test}_id.txt."""
    rng = np.random.default_rng([seed, 1])
    pids = sorted(int(p) for p in rng.choice(np.arange(1, 2 * ids + 11), size=ids, replace=False))
    people = dict(zip(pids, make_identities(ids, seed)))
    num_images = 0
    for cam in SYSU_CAMERAS:
        (out / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    for pid in pids:
        for cam in _sysu_cameras(np.random.default_rng([seed, 2, pid])):
            count = max(1, images_per_camera + int(rng.integers(-1, 2)))
            for n, image in enumerate(_images(people[pid], SYSU_CAMERAS[cam], count, seed, (pid, cam)), start=1):
                _save(image, out / f"cam{cam}" / f"{pid:04d}" / f"{n:04d}.jpg")
            num_images += count
    train, val, test = _split_ids(pids, rng)
    (out / "exp").mkdir(exist_ok=True)
    for name, split in (("train", train), ("val", val), ("test", test)):
        (out / "exp" / f"{name}_id.txt").write_text(",".join(str(p) for p in split) + "\n")
    return {"layout": "sysu", "ids": ids, "train_ids": len(train), "val_ids": len(val), "test_ids": len(test),
            "images": num_images}


def write_regdb(out: Path, ids: int, seed: int, images_per_camera: int) -> dict:
    """RegDB tree: Visible/<pid>/*.bmp, Thermal/<pid>/*.bmp (1-channel) and idx/ lists for 10 random half splits."""
    people = make_identities(ids, seed)
    pids = list(range(1, ids + 1))
    files: dict[tuple[str, int], list[str]] = {}
    for pid, person in zip(pids, people):
        for folder, cam in (("Visible", 1), ("Thermal", 2)):
            names = []
            for n, image in enumerate(_images(person, REGDB_CAMERAS[cam], images_per_camera, seed, (pid, cam))):
                rel = f"{folder}/{pid}/{folder[0].lower()}_{pid:04d}_{n:02d}.bmp"
                _save(image, out / rel)
                names.append(rel)
            files[(folder, pid)] = names
    (out / "idx").mkdir(parents=True, exist_ok=True)
    for trial in range(1, 11):
        perm = np.random.default_rng([seed, 5, trial]).permutation(pids)
        splits = {"train": sorted(map(int, perm[: ids // 2])), "test": sorted(map(int, perm[ids // 2:]))}
        for split, folder in product(("train", "test"), ("Visible", "Thermal")):
            lines = [f"{rel} {label}" for label, pid in enumerate(splits[split]) for rel in files[(folder, pid)]]
            word = "visible" if folder == "Visible" else "thermal"
            (out / "idx" / f"{split}_{word}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return {"layout": "regdb", "ids": ids, "train_ids": ids // 2, "test_ids": ids - ids // 2,
            "images": 2 * ids * images_per_camera}


def write_llcm(out: Path, ids: int, seed: int, images_per_camera: int) -> dict:
    """LLCM tree: idx/train_{vis,nir}.txt, idx/test_id.txt, {train,test}_{vis,nir}/camC/PPPP/*.jpg (NIR cam3 empty)."""
    rng = np.random.default_rng([seed, 3])
    people = dict(zip(range(1, ids + 1), make_identities(ids, seed)))
    test = sorted(int(p) for p in rng.choice(list(people), size=max(2, ids // 3), replace=False))
    train = [p for p in people if p not in test]
    lines: dict[str, list[str]] = {"vis": [], "nir": []}
    for pid, person in people.items():
        split = "test" if pid in test else "train"
        for kind, cams in (("vis", range(1, 10)), ("nir", (1, 2, 4, 5, 6, 7, 8, 9))):
            chosen = sorted(rng.choice(list(cams), size=int(rng.integers(2, 4)), replace=False))
            for cam in chosen:
                camera = _llcm_camera(cam, kind == "nir")
                for n, image in enumerate(_images(person, camera, images_per_camera, seed, (pid, cam, kind == "nir"))):
                    rel = f"{split}_{kind}/cam{cam}/{pid:04d}/{n:04d}.jpg"
                    _save(image, out / rel)
                    if split == "train":
                        lines[kind].append(f"{rel} {train.index(pid)}")
    (out / "test_nir" / "cam3").mkdir(parents=True, exist_ok=True)
    (out / "idx").mkdir(parents=True, exist_ok=True)
    for kind in ("vis", "nir"):
        (out / "idx" / f"train_{kind}.txt").write_text("\n".join(lines[kind]) + "\n")
    (out / "idx" / "test_id.txt").write_text(",".join(map(str, test)) + "\n")
    return {"layout": "llcm", "ids": ids, "train_ids": len(train), "test_ids": len(test)}


def _llcm_camera(cam: int, infrared: bool) -> Camera:
    """LLCM cameras borrow the SYSU looks: odd cameras indoor-like (2/3), even ones outdoor-like (4/6)."""
    indoor = cam % 2 == 1
    return SYSU_CAMERAS[(3 if infrared else 2) if indoor else (6 if infrared else 4)]


WRITERS = {"sysu": (write_sysu, 4), "regdb": (write_regdb, 10), "llcm": (write_llcm, 3)}


def write_synthetic(layout: str, out: str | Path, ids: int = 48, seed: int = 0,
                    images_per_camera: int | None = None) -> dict:
    """Write a synthetic VI-ReID data set in an official on-disk layout.

    Defaults (48 ids): SYSU layout = 24 train + 8 val + 16 test ids (training uses 32), about 4 images
    per (id, camera) in 2-6 cameras; RegDB = 10 + 10 images per id, 10 random half splits; LLCM = 1/3
    test ids, 2-3 cameras per modality. Images are 128 x 64 (h x w).

    Args:
        layout: "sysu", "regdb" or "llcm".
        out: output directory (created; it must be empty or absent).
        ids: number of identities (at least 6).
        seed: everything is a deterministic function of the seed.
        images_per_camera: images per (identity, camera); layout default when None.

    Returns:
        Summary dict (layout, id counts, images, seconds).

    Example:
        >>> write_synthetic("sysu", "/tmp/synth_sysu", ids=12)  # doctest: +SKIP
    """
    if layout not in WRITERS:
        raise UserError(f"unknown synthetic layout {layout!r}; expected one of {list(WRITERS)}")
    if ids < 6:
        raise UserError(f"--ids {ids} is too small; expected at least 6 identities")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output directory {out} is not empty; expected a new or empty directory")
    writer, default_count = WRITERS[layout]
    start = time.perf_counter()
    summary = writer(out, ids, seed, images_per_camera or default_count)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary
