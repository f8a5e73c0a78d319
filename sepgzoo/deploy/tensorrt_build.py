"""Building TensorRT engines from exported ONNX graphs (one per modality, dynamic-batch profile), and the
`trtexec` command lines that build them elsewhere.

An engine reaches the export directory only after it passed its parity check against ONNX Runtime: engines are
built and checked in a hidden staging folder, and published (engine + sidecar recording the check and the
engine's SHA-256) only when every one of them passed. The runtime (`sepgzoo.deploy.tensorrt_runtime`) loads only
an engine whose sidecar records a passed check for exactly its bytes; the builder runs its parity check through
the runtime's `TensorRTEngine`, and the runtime never imports the builder.

`tensorrt` is imported lazily; without it this module still writes the exact `trtexec` command lines to build the
engines on the target (a Jetson builds its own) for the target's own TensorRT application: such engines have no
sidecar, so sepgzoo's runtime refuses them. Torch-free, like `sepgzoo.deploy.runtime`: `build_engines(export_dir)`
runs on a target without PyTorch.

Precision is in the graph, never in a builder flag. FP16: the fp16 ONNX (network in fp16, SEG and the final L2 norm
in fp32); INT8: the symmetric Q/DQ ONNX of `export --int8` (explicit quantization: convolutions in int8, SEG, the
pooling and the normalisation in float). Both are built as *strongly typed* networks, on TensorRT 10 and 11 alike,
as NVIDIA's explicit-quantization guide asks. The TensorRT 10 weak-typing FP16/INT8 flags are not used: they let
TensorRT pick a lower precision for any layer, SEG's MatMul-DFT included, and TensorRT 11 removed them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sepgzoo.deploy.contract import (
    EXPORT_JSON,
    INPUT_NAME,
    PARITY_COSINE,
    cosine_rows,
    default_opt_batch,
    parity_batches,
    parity_images,
    passed_check,
    read_export_json,
)
from sepgzoo.deploy.ort_runtime import OnnxEmbedder
from sepgzoo.deploy.tensorrt_platform import (
    ENGINE_FORMAT,
    TensorRTUnavailable,
    check_engine_precision,
    current_platform,
    engine_filename,
    sidecar_path,
    tensorrt_missing,
)
from sepgzoo.deploy.tensorrt_runtime import TensorRTEngine
from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality
from sepgzoo.utils.atomic import atomic_path, write_json, write_text
from sepgzoo.utils.hashing import sha256_file

STAGING_PREFIX = ".trt-staging."  # hidden folder in the export directory where engines wait for their parity check
TRTEXEC_SCRIPT = "build_engines.sh"
DEFAULT_WORKSPACE_MIB = 2048


class EngineBuildError(UserError):
    """TensorRT could not parse or build a graph, or the engine failed its parity check; nothing is kept."""


# ---------------------------------------------------------------------------------------------------------------
# trtexec command lines
# ---------------------------------------------------------------------------------------------------------------
#: the builder's timing cache, kept in the export folder: every later build there (and every trtexec line) reuses
#: the measured tactics instead of timing them all again
TIMING_CACHE = "timing.cache"


def trtexec_command(onnx_path: str | Path, engine_path: str | Path, input_size: tuple[int, int], max_batch: int,
                    opt_batch: int | None = None, precision: str = "fp32",
                    workspace_mib: int = DEFAULT_WORKSPACE_MIB, timing_cache: str | Path = TIMING_CACHE) -> list[str]:
    """The trtexec argument list that builds one engine with a min 1 / opt / max batch profile.

    Valid on TensorRT 10.x and 11.x. `--noTF32`: TF32 MatMuls (on by default on Ampere and later) would
    round SEG's DFT to a 10-bit mantissa. For fp16 pass the fp16 ONNX, for int8 the Q/DQ ONNX: `--stronglyTyped`
    makes TensorRT 10 keep the graph's own types (fp32 islands, int8 only between Q/DQ pairs); on 11.x networks are
    always strongly typed and the flag is a no-op.

    Example:
        >>> " ".join(trtexec_command("visible.onnx", "visible.plan", (288, 144), 32))
        'trtexec --onnx=visible.onnx --saveEngine=visible.plan --minShapes=images:1x288x144x3 ...'
    """
    if max_batch < 1:
        raise UserError(f"max_batch must be >= 1, got {max_batch}")
    opt = opt_batch or default_opt_batch(max_batch)
    if not 1 <= opt <= max_batch:
        raise UserError(f"opt batch {opt} must be between 1 and max batch {max_batch}")
    h, w = input_size
    shape = lambda n: f"{INPUT_NAME}:{n}x{h}x{w}x3"  # noqa: E731
    command = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}", f"--minShapes={shape(1)}",
               f"--optShapes={shape(opt)}", f"--maxShapes={shape(max_batch)}",
               f"--memPoolSize=workspace:{workspace_mib}", "--noTF32", f"--timingCacheFile={timing_cache}"]
    if strongly_typed(precision):
        command.append("--stronglyTyped")
    return command


def strongly_typed(precision: str) -> bool:
    """Whether the engine of this precision is built as a strongly typed network (the graph carries its types)."""
    return check_engine_precision(precision) != "fp32"


def trtexec_commands(export_dir: str | Path, precision: str = "fp32", max_batch: int | None = None,
                     opt_batch: int | None = None) -> list[list[str]]:
    """trtexec argument lists for both modalities of an export directory (paths relative to it)."""
    record = read_export_json(export_dir)
    max_batch = max_batch or int(record["max_batch"])
    commands = []
    for modality in Modality:
        onnx_name = _onnx_name(record, modality, precision, export_dir)
        commands.append(trtexec_command(onnx_name, engine_filename(modality, precision), tuple(record["input_size"]),
                                        max_batch, opt_batch, precision))
    return commands


def _onnx_name(record: dict[str, Any], modality: Modality, precision: str, export_dir: str | Path) -> str:
    try:
        return record["files"][modality.value][precision]
    except KeyError:
        hint = f": export with --{precision} first" if precision != "fp32" else ""
        raise UserError(f"{Path(export_dir) / EXPORT_JSON} lists no {precision} graph for {modality.value}"
                        + hint) from None


def write_trtexec_script(export_dir: str | Path, precision: str = "fp32", max_batch: int | None = None,
                         opt_batch: int | None = None) -> tuple[Path, list[str]]:
    """Write `build_engines.sh` (run it inside the export directory on the target) -> (path, command lines)."""
    lines = [shlex.join(c) for c in trtexec_commands(export_dir, precision, max_batch, opt_batch)]
    script = "\n".join([
        "#!/bin/sh",
        "# Build the TensorRT engines on the machine that runs them (engines are GPU- and version-specific).",
        "# Run inside this directory; on a Jetson trtexec is /usr/src/tensorrt/bin/trtexec.",
        "set -e", 'cd "$(dirname "$0")"', *lines, ""])
    path = Path(export_dir) / TRTEXEC_SCRIPT
    write_text(path, script)
    path.chmod(0o755)
    return path, lines


# ---------------------------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------------------------
def build_engine(onnx_path: str | Path, engine_path: str | Path, modality: str | Modality,
                 input_size: tuple[int, int], max_batch: int, opt_batch: int | None = None, precision: str = "fp32",
                 workspace_mib: int = DEFAULT_WORKSPACE_MIB, timing_cache: str | Path | None = None) -> dict[str, Any]:
    """Build one engine with the TensorRT Python API and write it; returns its sidecar record, without `parity`.

    The engine is unchecked: `build_engines` builds into a staging folder and publishes an engine with its sidecar
    only once it passed its parity check. `TensorRTEngine` runs any engine; `TensorRTEmbedder` refuses this one
    until then.

    Args:
        onnx_path: an exported ONNX file of `precision` (the fp16 graph, the int8 Q/DQ graph).
        engine_path: output `.plan`.
        modality: what the graph embeds (recorded in the sidecar).
        input_size: (H, W).
        max_batch: profile maximum (minimum 1, optimum `opt_batch`).
        precision: "fp32", or "fp16" / "int8": a strongly typed network from that graph.
        workspace_mib: builder workspace pool.
        timing_cache: a timing-cache file read before the build (when it exists) and written after it.

    Raises:
        TensorRTUnavailable without TensorRT or a CUDA device; EngineBuildError when parsing or building fails.
    """
    platform = current_platform()
    import tensorrt as trt

    opt = opt_batch or default_opt_batch(max_batch)
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0
    if strongly_typed(precision) and major < 11:  # 11.x: always strongly typed, the flag is deprecated
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT {trt.__version__} could not parse {onnx_path}:\n  {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    config.clear_flag(trt.BuilderFlag.TF32)  # TF32 would round SEG's DFT MatMuls (as trtexec --noTF32)
    h, w = input_size
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, h, w, 3), (opt, h, w, 3), (max_batch, h, w, 3))
    config.add_optimization_profile(profile)
    _load_timing_cache(config, timing_cache)
    plan = builder.build_serialized_network(network, config)
    if plan is None:  # the builder logs why; fast-reid's exporter crashed later on this None
        raise EngineBuildError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path} "
                               "(see the log above)")
    engine_path = Path(engine_path)
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(plan))
    if timing_cache is not None:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"format": ENGINE_FORMAT, "modality": as_modality(modality).value, **platform,
            "precision": precision,
            "strongly_typed": strongly_typed(precision), "onnx": Path(onnx_path).name,
            "onnx_sha256": sha256_file(onnx_path),
            "profile": {"min": 1, "opt": opt, "max": max_batch}, "input_size": list(input_size),
            "workspace_mib": workspace_mib, "engine_sha256": sha256_file(engine_path)}


def _load_timing_cache(config, path: str | Path | None) -> None:
    """Give the builder the saved timing cache (or an empty one, filled by this build)."""
    if path is None:
        return
    saved = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(saved)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineBuildError(f"TensorRT refused the timing cache {path} (made by another TensorRT or GPU?); "
                               "delete it to time the tactics again")


def build_engines(export_dir: str | Path, precision: str = "fp32", max_batch: int | None = None,
                  opt_batch: int | None = None) -> dict[str, Any]:
    """Build one engine per modality in an export directory, check each against ONNX Runtime CPU, and publish them
    (engine + sidecar, recorded under `tensorrt` in `export.json`) only when every one passed.

    The engines are built and checked in a hidden staging folder of the export directory; on any failure it is
    removed and the engines already in the export directory are left exactly as they were.

    Raises:
        TensorRTUnavailable (naming TensorRT) when TensorRT or a CUDA device is missing; the export directory
        then holds `build_engines.sh` with the trtexec command lines to run on the target. EngineBuildError when
        an engine cannot be built or fails its parity check (naming the engine, its min cosine and the threshold).
    """
    export_dir = Path(export_dir)
    record = read_export_json(export_dir)
    max_batch = max_batch or int(record["max_batch"])
    reason = tensorrt_missing()
    if reason:
        script, lines = write_trtexec_script(export_dir, precision, max_batch, opt_batch)
        raise TensorRTUnavailable(f"{reason}. The ONNX graphs are in {export_dir}; build the engines on the target "
                                  f"with `sepgzoo engine build {export_dir}` (parity-checked: what sepgzoo's runtime "
                                  "loads), or "
                                  f"for your own TensorRT application with the trtexec commands in {script}:\n  "
                                  + "\n  ".join(lines))
    with engine_staging(export_dir) as staging:
        sidecars = {modality.value: _checked_engine(export_dir, staging, record, modality, precision, max_batch,
                                                    opt_batch) for modality in Modality}
        engines = {}
        for modality, sidecar in sidecars.items():
            name = engine_filename(modality, precision)
            _publish(staging / name, export_dir / name)
            engines[modality] = {"engine": name, **sidecar}
    record.setdefault("tensorrt", {})[precision] = engines
    write_json(export_dir / EXPORT_JSON, record)
    return engines


@contextlib.contextmanager
def engine_staging(export_dir: Path):
    """Yield a new hidden folder in the export directory (same file system: publishing is a rename); it is removed
    afterwards with whatever is still in it."""
    try:
        staging = Path(tempfile.mkdtemp(dir=export_dir, prefix=STAGING_PREFIX))
    except OSError as err:
        raise UserError(f"cannot build TensorRT engines in {export_dir}: {err.strerror}") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _checked_engine(export_dir: Path, staging: Path, record: dict[str, Any], modality: Modality, precision: str,
                    max_batch: int, opt_batch: int | None) -> dict[str, Any]:
    """Build one modality's engine into `staging`, check its parity, and write its sidecar there; returns it.

    Raises:
        EngineBuildError naming the engine, its min cosine and the threshold when the parity check fails.
    """
    staged = staging / engine_filename(modality, precision)
    sidecar = build_engine(export_dir / _onnx_name(record, modality, precision, export_dir), staged, modality,
                           tuple(record["input_size"]), max_batch, opt_batch, precision,
                           timing_cache=export_dir / TIMING_CACHE)
    sidecar["parity"] = engine_parity(staged, export_dir / _onnx_name(record, modality, "fp32", export_dir),
                                      max_batch, PARITY_COSINE[precision])
    parity = sidecar["parity"]
    if not passed_check(parity):
        target = export_dir / staged.name
        kept = f"; the earlier {target.name} there is untouched" if target.exists() else ""
        raise EngineBuildError(f"TensorRT engine {target} failed its parity check against ONNX Runtime CPU: min "
                               f"cosine {min(parity['min_cosine'].values()):.6f} < threshold {parity['threshold']} "
                               f"(per batch {parity['min_cosine']}); it was not kept{kept}")
    write_json(sidecar_path(staged), sidecar)
    return sidecar


def _publish(staged: Path, engine: Path) -> None:
    """Move a checked engine and its sidecar from the staging folder into place (renames on one file system).

    Sidecar first: until the engine follows, the new sidecar's `engine_sha256` matches no engine there, and the
    old sidecar never describes the new engine, so the runtime never loads an engine with another engine's record.
    """
    os.replace(sidecar_path(staged), sidecar_path(engine))
    os.replace(staged, engine)


def engine_parity(engine_path: str | Path, onnx_path: str | Path, max_batch: int, threshold: float) -> dict[str, Any]:
    """TensorRT vs ONNX Runtime CPU (fp32 graph) at batch 1, 3 and max on the deterministic `parity_images`."""
    reference = OnnxEmbedder(onnx_path, providers="cpu")
    batches = parity_batches(max_batch)
    with TensorRTEngine(engine_path, reference.modality) as engine:
        images = parity_images(max_batch, engine.input_size)
        expected = reference.embed(images)
        per_batch = {str(b): float(cosine_rows(engine.embed(images[:b]), expected[:b]).min()) for b in batches}
    return {"reference": "onnxruntime-cpu-fp32", "batches": batches, "threshold": threshold,
            "min_cosine": per_batch, "passed": min(per_batch.values()) >= threshold}
