"""A persistent gallery index on FAISS: embed a gallery once, search it with queries only.

An index is a folder:

- `index.faiss`: the FAISS index of unit-norm embeddings, searched by inner product (= cosine);
- `paths.json`: the image path of every row, in row order;
- `index.json`: what the rows are (format `sepgzoo-gallery-index/1`): the sha256 of the model weights that made
  them, the modality, the embedding dimension, the preprocessing contract, the index kind and its parameters, the
  count, the sha256 of the two files above, and the history of builds and additions.

Kinds: `exact` (`IndexFlatIP`, every row scored) and `hnsw`, the approximate kind for galleries of millions: a
hierarchical navigable small-world graph (`m` neighbours per row) over 8-bit scalar-quantized rows (a quarter of
float32's memory), searched with a candidate list of `ef_search`. Chosen on measurements
(benchmarks/results/gallery-index): on clustered 6144-d embeddings an inverted file (IVF-PQ, with the PQ shortlist
re-scored) had to scan 128 of its 316 lists to find 96% of the exact top 10 at 10^5 vectors, 2x faster than exact
search, because an identity's images scatter over the lists, where the graph found 95% at ef_search 64. At 10^6
such vectors the graph's recall falls too (0.37 at ef_search 64): check it on your own embeddings
(docs/retrieval.md).

A folder is written whole, atomically (`staging_folder`): a reader sees the index before an addition or after it,
never half of one. `GalleryIndex.open(path, mmap=True)` maps the index file instead of reading it, so a gallery
larger than memory can be searched; a mapped index is read-only.

Torch-free (numpy, faiss): it runs beside the ONNX Runtime / TensorRT runtimes on a machine without PyTorch.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.errors import UserError
from sepgzoo.modality import as_modality
from sepgzoo.utils.atomic import read_json, staging_folder, write_json
from sepgzoo.utils.hashing import sha256_file

INDEX_FORMAT = "sepgzoo-gallery-index/1"
INDEX_FILE, PATHS_FILE, META_FILE = "index.faiss", "paths.json", "index.json"
KINDS = ("exact", "hnsw")
#: unit-norm rows: a norm further than this from 1 means the vectors are not this model's embeddings
NORM_TOLERANCE = 1e-3


def import_faiss():
    try:
        import faiss
    except ImportError:
        raise UserError("the gallery index needs FAISS: pip install faiss-cpu (or faiss-gpu)") from None
    return faiss


def hnsw_parameters(m: int | None = None, ef_construction: int | None = None,
                    ef_search: int | None = None) -> dict[str, Any]:
    """The approximate kind's parameters: `m` graph neighbours per row (32), `ef_construction` candidates while
    linking a row (40), `ef_search` candidates per query (64); rows stored as 8-bit scalar codes."""
    return {"m": m or 32, "ef_construction": ef_construction or 40, "ef_search": ef_search or 64, "storage": "SQ8"}


def _new_faiss_index(kind: str, vectors: np.ndarray, parameters: dict[str, Any]):
    """An empty FAISS index of `kind`, trained on `vectors` where the kind needs training."""
    faiss = import_faiss()
    dim = vectors.shape[1]
    if kind == "exact":
        return faiss.IndexFlatIP(dim)
    index = faiss.index_factory(dim, f"HNSW{parameters['m']},{parameters['storage']}", faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(parameters["ef_construction"])
    index.train(vectors)  # the 8-bit codes' per-dimension ranges
    return index


def check_vectors(vectors: np.ndarray, dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """float32 C-contiguous [N, D] rows of norm 1 (what the models embed); UserError naming what is wrong."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or (dim is not None and vectors.shape[1] != dim):
        raise UserError(f"{what} have shape {list(vectors.shape)}; expected [N, {dim or 'D'}]")
    norms = np.linalg.norm(vectors, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (np.abs(norms - 1) > NORM_TOLERANCE))
    if len(bad):
        raise UserError(f"{what}: row {int(bad[0])} has norm {float(norms[bad[0]]):.6f}; expected unit-norm "
                        "embeddings (inner product = cosine)")
    return vectors


def checked_rows(vectors: np.ndarray, paths: Sequence[str | Path], dim: int | None = None,
                 indexed: Sequence[str] = ()) -> tuple[np.ndarray, list[str]]:
    """(float32 unit rows, path strings) to index: one path per row, none given twice or already `indexed`;
    UserError naming what is wrong."""
    vectors = check_vectors(vectors, dim)
    paths = [str(p) for p in paths]
    if len(paths) != len(vectors):
        raise UserError(f"{len(vectors)} vectors but {len(paths)} paths: expected one path per row")
    repeated = sorted(set(paths) & set(indexed))
    if repeated:
        raise UserError(f"{repeated[0]} is already in the index: each gallery image is indexed once")
    twice = [p for p, n in Counter(paths).items() if n > 1]
    if twice:
        raise UserError(f"the same path is given twice ({twice[0]}): each gallery image is indexed once")
    return vectors, paths


class GalleryIndex:
    """A FAISS index of gallery embeddings with their image paths and the model that made them.

    Example:
        >>> index = GalleryIndex.from_embeddings(vectors, paths, metadata={"model_sha256": sha, "modality": "visible"})
        >>> index.save("gallery.index")
        >>> scores, paths = GalleryIndex.open("gallery.index").search(queries, k=10)
    """

    def __init__(self, index, paths: list[str], metadata: dict[str, Any], read_only: bool = False) -> None:
        self.index, self.paths, self.metadata, self.read_only = index, paths, metadata, read_only

    # -- making one ----------------------------------------------------------------------------------------------
    @classmethod
    def from_embeddings(cls, vectors: np.ndarray, paths: Sequence[str | Path], metadata: dict[str, Any] | None = None,
                        kind: str = "exact", **parameters: int | None) -> GalleryIndex:
        """Index any unit-norm embeddings. `metadata` should name `model_sha256` and `modality` (searches check them);
        `parameters` are the kind's (`hnsw`: m, ef_construction, ef_search; defaults from `hnsw_parameters`)."""
        if kind not in KINDS:
            raise UserError(f"index kind {kind!r}: expected one of {list(KINDS)}")
        vectors, paths = checked_rows(vectors, paths)
        params = hnsw_parameters(**parameters) if kind == "hnsw" else {}
        index = _new_faiss_index(kind, vectors, params)
        index.add(vectors)
        meta = {"format": INDEX_FORMAT, **(metadata or {}), "embedding_dim": int(vectors.shape[1]), "kind": kind,
                "parameters": params, "count": len(paths), "faiss": import_faiss().__version__,
                "history": [{"event": "build", "added": len(paths), "time": _now()}]}
        made = cls(index, paths, meta)
        made._apply_search_parameters()
        return made

    @classmethod
    def build(cls, model, folder: str | Path, model_sha256: str | None = None, kind: str = "exact",
              batch_size: int = 32, progress: bool = True, **parameters: int | None) -> GalleryIndex:
        """Embed every image under `folder` (recursively) with `model` (an embedder from `open_model` or a
        checkpoint's `TorchEmbedder`) and index them. `model_sha256`: the weights' sha256 (read from an ONNX
        graph's metadata when not given)."""
        paths = _gallery_paths(folder)
        metadata = {"model_sha256": model_sha256 or weights_of(model), **describe_model(model)}
        return cls.from_embeddings(_embed(model, paths, batch_size, progress), paths, metadata, kind, **parameters)

    def add(self, model, folder: str | Path, model_sha256: str | None = None, batch_size: int = 32,
            progress: bool = True) -> dict[str, int]:
        """Embed and append the images under `folder` that the index does not hold yet; a path already indexed is
        skipped (never embedded twice). Returns {"added": n, "skipped": m}."""
        self.check_model(model_sha256 or weights_of(model), as_modality(model.modality).value)
        known = set(self.paths)
        every = _gallery_paths(folder)
        new = [p for p in every if p not in known]
        if new:
            self.add_embeddings(_embed(model, new, batch_size, progress), new)
        return {"added": len(new), "skipped": len(every) - len(new)}

    def add_embeddings(self, vectors: np.ndarray, paths: Sequence[str | Path]) -> None:
        """Append rows (unit-norm, this index's dimension); a path already indexed is refused."""
        if self.read_only:
            raise UserError("this index was opened memory-mapped (read-only): open it with mmap=False to add to it")
        vectors, paths = checked_rows(vectors, paths, self.dim, self.paths)
        self.index.add(vectors)
        self.paths.extend(paths)
        self.metadata["count"] = len(self.paths)
        self.metadata["history"].append({"event": "add", "added": len(paths), "time": _now()})

    # -- using one -----------------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.metadata["embedding_dim"])

    def __len__(self) -> int:
        return len(self.paths)

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, list[list[str]]]:
        """The k best rows per query: (cosine scores [Q, k'] best first, their paths), k' = min(k, len(index))."""
        queries = check_vectors(queries, self.dim, "queries")
        k = min(int(k), len(self))
        if k < 1:
            raise UserError("the index is empty" if not len(self) else f"k must be >= 1, got {k}")
        scores, rows = self.index.search(queries, k)
        return scores, [[self.paths[r] if r >= 0 else "" for r in row] for row in rows]

    def check_model(self, model_sha256: str | None, modality: str | None = None) -> None:
        """Refuse embeddings of another model (naming both sha256) or, for additions, of another modality."""
        if model_sha256 != self.metadata.get("model_sha256"):
            raise UserError(f"the model's weights sha256 {model_sha256} is not the index's "
                            f"{self.metadata.get('model_sha256')}: search an index with the model that built it")
        if modality is not None and modality != self.metadata.get("modality"):
            raise UserError(f"the index holds {self.metadata.get('modality')} images; got {modality} ones")

    # -- files ---------------------------------------------------------------------------------------------------
    def save(self, path: str | Path, replace: bool = False) -> Path:
        """Write the index folder whole (atomically). An existing folder is refused unless `replace` (what `add`
        does to the index it opened)."""
        faiss = import_faiss()
        path = Path(path)
        if path.exists() and not replace:
            raise UserError(f"{path} exists: build into a new folder, or add images to it with `sepgzoo index add`")
        with staging_folder(path) as staging:
            faiss.write_index(self.index, str(staging / INDEX_FILE))
            (staging / PATHS_FILE).write_text(json.dumps(self.paths))
            self.metadata["sha256"] = {name: sha256_file(staging / name) for name in (INDEX_FILE, PATHS_FILE)}
            write_json(staging / META_FILE, self.metadata)
        return path

    @classmethod
    def open(cls, path: str | Path, mmap: bool = False, verify: bool = True, gpu: bool = False) -> GalleryIndex:
        """Open an index folder. `mmap`: map the index file instead of reading it (read-only; for galleries larger
        than memory). `verify`: check both files against the sha256 that index.json records. `gpu`: search an exact
        index on every GPU (a GPU build of FAISS; read-only here, the folder keeps the CPU index)."""
        faiss = import_faiss()
        path = Path(path)
        meta = read_json(path / META_FILE, INDEX_FORMAT, " (a gallery index written by `sepgzoo index build`)")
        if verify:
            for name, expected in meta.get("sha256", {}).items():
                if sha256_file(path / name) != expected:
                    raise UserError(f"{path / name} is not the file {path / META_FILE} records (sha256 differs): "
                                    "the index was changed outside sepgzoo; build it again")
        flags = 0
        if mmap:  # the rows (flat float32 or 8-bit codes) are mapped; an HNSW graph is read
            flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
        index = faiss.read_index(str(path / INDEX_FILE), flags)
        paths = json.loads((path / PATHS_FILE).read_text())
        if index.ntotal != len(paths) or index.d != meta["embedding_dim"]:
            raise UserError(f"{path}: the index holds {index.ntotal} vectors of dimension {index.d} but {META_FILE} "
                            f"records {len(paths)} paths of dimension {meta['embedding_dim']}; build it again")
        opened = cls(_on_gpus(index, meta["kind"]) if gpu else index, paths, meta, read_only=mmap or gpu)
        opened._apply_search_parameters()
        return opened

    def set_search(self, ef_search: int) -> None:
        """Change the approximate kind's search effort (recorded in `metadata`, saved with the index)."""
        if self.metadata["kind"] != "hnsw":
            raise UserError(f"ef_search belongs to the hnsw kind; this index is {self.metadata['kind']}")
        self.metadata["parameters"]["ef_search"] = int(ef_search)
        self._apply_search_parameters()

    def _apply_search_parameters(self) -> None:
        if self.metadata["kind"] == "hnsw":
            self.index.hnsw.efSearch = int(self.metadata["parameters"]["ef_search"])


def _on_gpus(index, kind: str):
    """The exact index copied to every GPU (FAISS's `index_cpu_to_all_gpus`); refused without a GPU build or for the
    approximate kind, whose re-scoring step has no GPU version."""
    faiss = import_faiss()
    if kind != "exact":
        raise UserError(f"an {kind} index is searched on the CPU; only the exact kind runs on GPUs")
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if not gpus:
        raise UserError("no GPU FAISS here (faiss-cpu, or no CUDA device): install faiss-gpu instead of faiss-cpu, or "
                        "search on the CPU")
    return faiss.index_cpu_to_all_gpus(index)


def describe_model(model) -> dict[str, Any]:
    """What an index records about the embedder that made its rows."""
    metadata = getattr(model, "metadata", {}) or {}
    from sepgzoo.preprocess import contract

    return {"modality": as_modality(model.modality).value, "model": metadata.get("model"),
            "embedder": f"{getattr(model, 'provider', type(model).__name__)} {getattr(model, 'precision', 'fp32')}",
            "preprocess": metadata.get("preprocess") or contract(model.input_size)}


def weights_of(model) -> str:
    sha = (getattr(model, "metadata", {}) or {}).get("weights_sha256")
    if not sha:
        raise UserError(f"{model!r} does not say which weights it runs: pass model_sha256= (the sha256 of the "
                        "model.safetensors it was exported from)")
    return sha


def _gallery_paths(folder: str | Path) -> list[str]:
    from sepgzoo.preprocess import IMAGE_SUFFIXES, list_images

    paths = [str(p.resolve()) for p in list_images(folder, recursive=True)]
    if not paths:
        raise UserError(f"no images ({' '.join(IMAGE_SUFFIXES)}) found under {folder} (or it is not a folder)")
    return paths


def _embed(model, paths: list[str], batch_size: int, progress: bool) -> np.ndarray:
    from tqdm import tqdm

    chunks = []
    with tqdm(total=len(paths), desc=f"embedding ({as_modality(model.modality).value})", unit="img",
              disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunks.append(model.embed_paths(paths[start:start + batch_size], batch_size))
            bar.update(len(chunks[-1]))
    return np.concatenate(chunks)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
