"""Recipes: one frozen dataclass per section, YAML files with `base:` inheritance, safe `--set` overrides.

Precedence: dataclass defaults < base recipe < recipe < `--set section.key=value`. Defaults live only
here; each field has a one-line description. Unknown keys are errors with a did-you-mean.
"""

import dataclasses
import difflib
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sepgzoo.errors import RecipeWarning, UserError
from sepgzoo.utils.resources import shipped_folder


@dataclass(frozen=True)
class DataCfg:
    dataset: str = "sysu"  # a registered data set: sysu, regdb, llcm, synthetic (generated SYSU-layout data), ...
    root: str | None = None  # data set root (synthetic: generated here, default a cache folder)
    trial: int = 1  # RegDB split 1..10 (one model per trial)
    height: int = 288  # input height
    width: int = 144  # input width
    ids_per_batch: int = 8  # P identities per batch
    images_per_id: int = 7  # K images per identity and modality (batch = P x (K visible + K infrared))
    workers: int = 4  # data loader worker processes
    pad: int = 10  # padding before the random crop
    flip: float = 0.5  # horizontal flip probability
    erasing: float = 0.5  # random erasing probability
    synthetic_ids: int = 48  # identities of the generated data set (dataset: synthetic)
    val_ids: int = 0  # training identities held out as a validation split (0: none; selection never uses test)
    cache: bool = False  # keep resized images in the cache folder: decode and resize each image only once
    skip_unpaired: bool = False  # drop (and log) training identities seen in one modality only, instead of an error

    def __post_init__(self) -> None:
        """`dataset` must be registered (`sepgzoo.data.registry`); an alias becomes the registered name."""
        from sepgzoo.data.registry import get_dataset  # lazy: reading a recipe does not load the data stack early

        try:
            spec = get_dataset(self.dataset)
        except UserError as err:
            raise UserError(f"data.dataset = {self.dataset!r}: {err}") from None
        object.__setattr__(self, "dataset", spec.name)


@dataclass(frozen=True)
class ModelCfg:
    name: str = "sepg"  # registered model name
    backbone: str = "resnet50"  # timm backbone of a supported family
    pretrained: str = "imagenet"  # backbone weights: imagenet (timm's), none, or a local file path
    split_at: int = -2  # last shared stage (index into feature_info; -2: all but the last stage shared)
    parts: int = 12  # horizontal parts N
    part_dim: int = 512  # width of each part embedding
    dropout: float = 0.0  # dropout before the ID classifiers only (authors: 0.5; embeddings and PABA never see it)
    classifier: Literal["cosine", "linear"] = "cosine"  # ID classifiers: scaled cosine, or Linear with bias (authors)
    classifier_scale: float = 16.0  # logit scale of the cosine classifier
    part_norm: Literal["joint", "modality"] = "joint"  # part-head BN statistics, the same in training and eval
    seg: bool = True  # spectral enhancement of visible images (false: ablation baseline)
    seg_impl: Literal["fft", "matmul"] = "fft"  # SEG implementation used in training (same numbers)


@dataclass(frozen=True)
class LossCfg:
    id_specific: float = 1.0  # lambda1: ID loss of the modality-specific branch
    paba: float = 2.5  # lambda2: PABA loss
    id_parts: float = 1.0  # lambda3: sum of part ID losses
    cross_centre: float = 0.0  # weight of the cross-centre loss (Table II "+CC" row)
    margin: float = 0.5  # PABA margin
    label_smoothing: float = 0.0  # label smoothing of the ID losses


@dataclass(frozen=True)
class OptimCfg:
    lr: float = 0.03  # learning rate of the new layers (bottlenecks, classifiers)
    backbone_lr_mult: float = 0.1  # backbone lr = lr x this when the backbone is pretrained (1.0 otherwise)
    momentum: float = 0.9  # SGD momentum (Nesterov)
    weight_decay: float = 5e-4  # SGD weight decay
    milestones: list[int] = field(default_factory=lambda: [30, 70])  # epochs where lr is multiplied by gamma
    gamma: float = 0.1  # lr decay factor
    warmup_epochs: int = 0  # linear warm-up epochs (0: none, as in the paper)


@dataclass(frozen=True)
class TrainCfg:
    epochs: int = 120  # training epochs
    seed: int = 0  # seed of every random generator
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    channels_last: bool = True  # channels_last memory format of model and images (CUDA and CPU: faster on both)
    compile: bool = False  # torch.compile the model (the first step compiles, ~1 min on CPU; docs/benchmarks.md)
    sync_bn: bool = False  # SyncBatchNorm under DDP
    iters_per_epoch: int = 0  # iterations per epoch (0: enough batches to see max(#visible, #infrared) images)
    log_grad_norms: bool = False  # log the gradient norm each loss term sends into the shared trunk (slower)
    evaluate: bool = True  # evaluate the last epoch on the test protocol when training ends
    dist_timeout_s: float = 1800.0  # DDP: seconds a rank may wait in a collective before the job fails


@dataclass(frozen=True)
class EvalCfg:
    mode: Literal["all", "indoor", "both"] = "both"  # SYSU search mode(s) evaluated
    shot: Literal["single", "multi"] = "single"  # gallery images per identity and camera: 1 or 10
    trials: int = 10  # gallery trials averaged
    sampler: Literal["agw", "official"] = "agw"  # SYSU gallery sampler
    direction: Literal["v2i", "i2v", "both"] = "both"  # RegDB/LLCM query -> gallery direction(s) (SYSU is i2v)
    flip: bool = False  # flip test-time augmentation (always labelled in results)
    batch_size: int = 64  # feature extraction batch
    rerank: bool = False  # also report k-reciprocal re-ranking (Zhong et al. 2017), labelled, beside the plain numbers
    rerank_k1: int = 20  # re-ranking: k-reciprocal neighbourhood
    rerank_k2: int = 6  # re-ranking: query-expansion neighbourhood
    rerank_lambda: float = 0.3  # re-ranking: weight of the original distance


SECTIONS: dict[str, type] = {
    "data": DataCfg, "model": ModelCfg, "loss": LossCfg, "optim": OptimCfg, "train": TrainCfg, "eval": EvalCfg,
}


# -- domains: what each numeric key may be, checked when a recipe is built (before any folder is written) -----------
def _at_least(bound: float) -> tuple[str, Any]:
    return f">= {bound}", lambda value: value >= bound


def _above(bound: float) -> tuple[str, Any]:
    return f"> {bound}", lambda value: value > bound


_PROBABILITY = ("a probability in [0, 1]", lambda value: 0.0 <= value <= 1.0)
_FRACTION_BELOW_ONE = ("in [0, 1)", lambda value: 0.0 <= value < 1.0)
_IMAGE_SIDE = (">= 32 (the backbones downsample by 16 to 32)", lambda value: value >= 32)

DOMAINS: dict[str, tuple[str, Any]] = {
    "data.trial": _at_least(1), "data.height": _IMAGE_SIDE, "data.width": _IMAGE_SIDE,
    "data.ids_per_batch": _at_least(1), "data.images_per_id": _at_least(1), "data.workers": _at_least(0),
    "data.pad": _at_least(0), "data.flip": _PROBABILITY, "data.erasing": _PROBABILITY,
    "data.synthetic_ids": _at_least(2), "data.val_ids": _at_least(0),
    "model.parts": _at_least(1), "model.part_dim": _at_least(1), "model.dropout": _FRACTION_BELOW_ONE,
    "model.classifier_scale": _above(0),
    "loss.id_specific": _at_least(0), "loss.paba": _at_least(0), "loss.id_parts": _at_least(0),
    "loss.cross_centre": _at_least(0), "loss.margin": _at_least(0), "loss.label_smoothing": _FRACTION_BELOW_ONE,
    "optim.lr": _above(0), "optim.backbone_lr_mult": _at_least(0), "optim.momentum": _FRACTION_BELOW_ONE,
    "optim.weight_decay": _at_least(0), "optim.gamma": _above(0), "optim.warmup_epochs": _at_least(0),
    "train.epochs": _at_least(1), "train.seed": _at_least(0), "train.iters_per_epoch": _at_least(0),
    "train.dist_timeout_s": _above(0),
    "eval.trials": _at_least(1), "eval.batch_size": _at_least(1),
    "eval.rerank_k1": _at_least(1), "eval.rerank_k2": _at_least(1), "eval.rerank_lambda": _PROBABILITY,
}


def recipe_keys() -> list[dict[str, str]]:
    """Every recipe key with its default, what it may be (type, choices or domain) and its one-line description."""
    import inspect

    rows = []
    for section, cls in SECTIONS.items():
        comments = dict(re.findall(r"^    (\w+): [^=\n]+=.*?#\s*(.+)$", inspect.getsource(cls), re.M))
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            rows.append({"key": f"{section}.{f.name}", "default": repr(default),
                         "allowed": _allowed(f"{section}.{f.name}", hints[f.name]),
                         "description": comments.get(f.name, "")})
    return rows


def _allowed(key: str, annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return " | ".join(map(str, typing.get_args(annotation)))
    kind = getattr(annotation, "__name__", str(annotation).replace("typing.", ""))
    if key == "optim.milestones":
        return "strictly increasing epochs >= 1 (at or past train.epochs: never reached, a warning)"
    return f"{kind} {DOMAINS[key][0]}" if key in DOMAINS else kind


def check_domains(recipe: "Recipe") -> None:
    """UserError naming the recipe key, its value and what is allowed, for the first value out of its domain."""
    for key, (allowed, ok) in DOMAINS.items():
        section, name = key.split(".")
        value = getattr(getattr(recipe, section), name)
        if not ok(value):
            raise UserError(f"{key} = {value!r}: expected {allowed}")
    check_milestones(recipe.optim.milestones, recipe.train.epochs)
    for rule in CROSS_KEY_RULES:
        rule(recipe)


def check_milestones(milestones: list[int], epochs: int) -> None:
    """Refuse milestones that are not strictly increasing epochs >= 1; warn (one line) about those at or past
    `train.epochs`, where the lr simply never decays: a short run of a long recipe is a smoke test, not an error."""
    if any(b <= a for a, b in zip(milestones, milestones[1:])) or any(m < 1 for m in milestones):
        raise UserError(f"optim.milestones = {milestones}: expected strictly increasing epochs >= 1")
    late = [m for m in milestones if m >= epochs]
    if late:
        warnings.warn(f"optim.milestones {late} lie at or past train.epochs = {epochs}: the lr is never decayed there",
                      RecipeWarning, stacklevel=2)


# -- cross-key rules that need no data: each raises a UserError naming every key involved --------------------------
def _val_ids_below_synthetic_ids(recipe: "Recipe") -> None:
    data = recipe.data
    if data.dataset == "synthetic" and data.val_ids and data.val_ids >= data.synthetic_ids:
        raise UserError(f"data.val_ids = {data.val_ids}: expected fewer than data.synthetic_ids = {data.synthetic_ids}")


def _compile_without_grad_norms(recipe: "Recipe") -> None:
    if recipe.train.compile and recipe.train.log_grad_norms:
        raise UserError("train.compile and train.log_grad_norms cannot be combined: the gradient norms need the "
                        "trunk output inside the compiled graph; turn one of them off")


def _sync_bn_with_joint_part_norm(recipe: "Recipe") -> None:
    if recipe.train.sync_bn and recipe.model.part_norm == "modality":
        raise UserError("train.sync_bn synchronises torch BatchNorm layers only, not the per-modality part-head "
                        "statistics of model.part_norm = 'modality'; use model.part_norm=joint with sync_bn")


def _some_loss_term(recipe: "Recipe") -> None:
    loss = recipe.loss
    if not (loss.id_specific or loss.paba or loss.id_parts or loss.cross_centre):
        raise UserError("loss.id_specific, loss.paba, loss.id_parts and loss.cross_centre are all 0: "
                        "expected at least one loss term with a positive weight")


#: rules between keys of different sections, checked whenever a recipe is built (the data-dependent ones,
#: protocols and samplers, are checked by `sepgzoo.training.preflight` before a run starts)
CROSS_KEY_RULES = (_val_ids_below_synthetic_ids, _compile_without_grad_norms, _sync_bn_with_joint_part_norm,
                   _some_loss_term)


@dataclass(frozen=True)
class Recipe:
    name: str = "custom"
    data: DataCfg = field(default_factory=DataCfg)
    model: ModelCfg = field(default_factory=ModelCfg)
    loss: LossCfg = field(default_factory=LossCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    train: TrainCfg = field(default_factory=TrainCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# -- recipe files ---------------------------------------------------------------------------------------------------
def recipe_dir() -> Path:
    """The shipped recipes (top-level `recipes/`, installed as `sepgzoo.recipes`)."""
    return shipped_folder("sepgzoo.recipes", "recipes")


def available_recipes() -> list[str]:
    return sorted(p.stem for p in recipe_dir().glob("*.yaml") if not p.stem.startswith("_"))


def find_yaml(name_or_path: str, folder: Path, available: list[str], what: str) -> Path:
    """A shipped `folder/NAME.yaml` by name, or a file when the text has a `/` or ends in .yaml."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if not path.is_file():
            raise UserError(f"{what} file {path} does not exist")
        return path
    path = folder / f"{name_or_path}.yaml"
    if not path.is_file():
        hint = did_you_mean(name_or_path, available)
        raise UserError(f"unknown {what} {name_or_path!r}{hint}; available: {', '.join(available)}")
    return path


def find_recipe(name_or_path: str) -> Path:
    """`sysu` -> the shipped recipes/sysu.yaml; anything with a `/` or ending in .yaml is a path."""
    return find_yaml(name_or_path, recipe_dir(), available_recipes(), "recipe")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def resolve_file(path: Path, depth: int = 0) -> dict[str, Any]:
    """The recipe file merged over its `base:` (resolved relative to the file)."""
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if depth >= 2:
        raise UserError(f"{path}: base recipes nest at most two deep")
    return deep_merge(resolve_file((path.parent / base).resolve(), depth + 1), data)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Dicts merge recursively; lists and scalars replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# -- overrides ------------------------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, str, Any]:
    """`section.key=value` -> (section, key, value parsed by yaml.safe_load; never eval)."""
    dotted, sep, raw = text.partition("=")
    section, dot, key = dotted.strip().partition(".")
    if not sep or not dot or not key:
        raise UserError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise UserError(f"--set {text!r}: value is not a YAML scalar or list ({err})") from err
    return section, key, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        section, key, value = parse_override(text)
        data = deep_merge(data, {section: {key: value}})
    return data


# -- typed construction ---------------------------------------------------------------------------------------------
def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check/convert a YAML value against a field annotation; the error names the key and what was expected."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except UserError as err:
                errors.append(str(err))
        raise UserError(errors[0])
    if origin is Literal:
        if value not in args:
            raise UserError(f"{where} = {value!r}: expected one of {', '.join(map(repr, args))}")
        return value
    if origin is list:
        items = value if isinstance(value, list) else [value]
        return [_coerce(item, args[0], f"{where}[{i}]") for i, item in enumerate(items)]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where} = {value!r}: expected true or false")
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):  # YAML 1.1 reads 1e-2 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise UserError(f"{where} = {value!r}: expected {getattr(annotation, '__name__', annotation)}")


def _build_section(name: str, cls: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise UserError(f"recipe section {name!r} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            hint = did_you_mean(key, known)
            raise UserError(f"unknown recipe key {name}.{key}{hint}; {name} keys: {', '.join(known)}")
        kwargs[key] = _coerce(value, hints[key], f"{name}.{key}")
    return cls(**kwargs)


def build_recipe(data: dict[str, Any], name: str = "custom") -> Recipe:
    """A typed Recipe from a plain mapping of sections (unknown sections/keys are errors)."""
    data = dict(data)
    name = str(data.pop("name", name))
    sections = {}
    for section, values in data.items():
        if section not in SECTIONS:
            raise UserError(
                f"unknown recipe section {section!r}{did_you_mean(section, list(SECTIONS))}; "
                f"sections: {', '.join(SECTIONS)}"
            )
        sections[section] = _build_section(section, SECTIONS[section], values)
    recipe = Recipe(name=name, **sections)
    check_domains(recipe)
    return recipe


def load_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Resolve a recipe name or file, merge its base and the `--set` overrides, and type-check every key.

    Example:
        >>> recipe = load_recipe("sysu", ["train.epochs=5", "data.root=/data/SYSU-MM01"])
    """
    path = find_recipe(name_or_path)
    data = apply_overrides(resolve_file(path), list(overrides))
    return build_recipe(data, name=path.stem)


def recipe_from_dict(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """A Recipe from a saved resolved mapping (a run's recipe.yaml or a checkpoint) plus overrides."""
    return build_recipe(apply_overrides(dict(data), list(overrides)))
