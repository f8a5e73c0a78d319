"""The gallery index: exact search equals a numpy ranking, the approximate kind finds most of the exact neighbours,
the folder round-trips (memory-mapped too), and every refusal happens before anything is written.

The CLI tests build an index with the tiny exported model and compare `search --index` with `search --gallery`.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from deploy_helpers import exported, write_images

from sepgzoo.cli import main
from sepgzoo.deploy.contract import read_export_json
from sepgzoo.deploy.gallery_index import INDEX_FILE, META_FILE, PATHS_FILE, GalleryIndex
from sepgzoo.errors import UserError

META = {"model_sha256": "a" * 64, "modality": "visible"}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, centres: int, seed: int) -> np.ndarray:
    """Unit vectors around `centres` random unit centres (same-centre cosine about 0.6)."""
    rng = np.random.default_rng(seed)
    centre = unit(rng.standard_normal((centres, dim)))
    return unit(centre[rng.integers(0, centres, n)] + 0.8 * unit(rng.standard_normal((n, dim))))


def numpy_top_k(queries, gallery, k):
    scores = queries @ gallery.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.fixture(scope="module")
def gallery():
    vectors = clustered(600, 32, 40, seed=0)
    return vectors, [f"/gallery/{i:04d}.jpg" for i in range(len(vectors))]


def test_exact_search_is_the_numpy_ranking(gallery):
    vectors, paths = gallery
    queries = clustered(7, 32, 40, seed=1)
    scores, found = GalleryIndex.from_embeddings(vectors, paths, META).search(queries, k=10)
    expected_scores, order = numpy_top_k(queries, vectors, 10)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    assert found == [[paths[i] for i in row] for row in order]


def test_saved_index_reopens_identical_and_memory_mapped_read_only(gallery, tmp_path):
    vectors, paths = gallery
    for kind, parameters in (("exact", {}), ("hnsw", {"m": 8, "ef_search": 16})):
        made = GalleryIndex.from_embeddings(vectors, paths, META, kind=kind, **parameters)
        made.save(tmp_path / kind)
        queries = vectors[:5]
        expected = made.search(queries, 5)
        for mmap in (False, True):
            opened = GalleryIndex.open(tmp_path / kind, mmap=mmap)
            got = opened.search(queries, 5)
            np.testing.assert_allclose(got[0], expected[0], atol=1e-6)
            assert got[1] == expected[1] and opened.metadata["parameters"] == made.metadata["parameters"]
        with pytest.raises(UserError, match="memory-mapped"):
            opened.add_embeddings(vectors[:1], ["/gallery/new.jpg"])
    record = json.loads((tmp_path / "hnsw" / META_FILE).read_text())
    assert record["kind"] == "hnsw" and record["parameters"] == {"m": 8, "ef_construction": 40, "ef_search": 16,
                                                                 "storage": "SQ8"}
    assert record["count"] == 600 and record["embedding_dim"] == 32 and record["model_sha256"] == "a" * 64


def test_the_approximate_kind_finds_most_exact_neighbours(gallery):
    vectors, paths = gallery
    queries = clustered(50, 32, 40, seed=2)
    exact = GalleryIndex.from_embeddings(vectors, paths, META).search(queries, 10)[1]
    approx = GalleryIndex.from_embeddings(vectors, paths, META, kind="hnsw")
    recall = lambda found: np.mean([len(set(a) & set(e)) / 10 for a, e in zip(found, exact)])  # noqa: E731
    assert recall(approx.search(queries, 10)[1]) > 0.95
    approx.set_search(ef_search=1)  # the graph's greedy walk alone, no candidate list: worse
    assert recall(approx.search(queries, 10)[1]) < recall(exact)


def test_additions_append_and_repeats_are_refused(gallery):
    vectors, paths = gallery
    index = GalleryIndex.from_embeddings(vectors[:500], paths[:500], META)
    index.add_embeddings(vectors[500:], paths[500:])
    scores, found = index.search(vectors[550:551], 1)
    assert found == [[paths[550]]] and len(index) == 600 and index.metadata["count"] == 600
    assert [h["event"] for h in index.metadata["history"]] == ["build", "add"]
    with pytest.raises(UserError, match=r"/gallery/0003\.jpg is already in the index"):
        index.add_embeddings(vectors[:1], [paths[3]])
    assert len(index) == 600 and index.index.ntotal == 600


@pytest.mark.parametrize("vectors, paths, kwargs, message", [
    (np.ones((2, 4)), ["a", "b"], {}, "row 0 has norm 2.000000; expected unit-norm"),
    (unit(np.ones((2, 4))), ["a"], {}, "2 vectors but 1 paths"),
    (unit(np.ones((2, 4))), ["a", "a"], {}, "the same path is given twice"),
    (unit(np.ones((2, 4))), ["a", "b"], {"kind": "ivfpq"}, "index kind 'ivfpq'"),
])
def test_bad_input_is_refused_in_one_line(vectors, paths, kwargs, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")):
        GalleryIndex.from_embeddings(vectors, paths, META, **kwargs)


def test_gpu_search_is_refused_in_one_line_where_faiss_has_no_gpu(gallery, tmp_path):
    import faiss

    vectors, paths = gallery
    GalleryIndex.from_embeddings(vectors, paths, META).save(tmp_path / "exact")
    if faiss.get_num_gpus():
        pytest.skip("a GPU build of FAISS with a GPU: the refusal cannot happen here")
    with pytest.raises(UserError, match="no GPU FAISS here"):
        GalleryIndex.open(tmp_path / "exact", gpu=True)


def test_a_changed_index_file_and_an_existing_folder_are_refused(gallery, tmp_path):
    vectors, paths = gallery
    index = GalleryIndex.from_embeddings(vectors, paths, META)
    index.save(tmp_path / "index")
    with pytest.raises(UserError, match="exists: build into a new folder"):
        index.save(tmp_path / "index")
    (tmp_path / "index" / PATHS_FILE).write_text(json.dumps(paths[::-1]))
    with pytest.raises(UserError, match=r"paths\.json is not the file .*index\.json records"):
        GalleryIndex.open(tmp_path / "index")
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == [INDEX_FILE, META_FILE, PATHS_FILE]


# ---------------------------------------------------------------------------------------------------------------
# CLI, with the tiny exported model
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return exported(tmp_path_factory.mktemp("index"))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_index_build_add_and_search_match_a_folder_search(export_dir, tmp_path):
    first = write_images(tmp_path / "gallery", 6, seed=0)
    queries = write_images(tmp_path / "q", 2, seed=7, grey=True)
    result = invoke("index", "build", "--model", export_dir, "--modality", "visible", "--gallery", tmp_path / "gallery",
                    "--out", tmp_path / "idx")
    assert result.exit_code == 0, result.output
    assert "6 visible images, kind exact" in result.output
    meta = json.loads((tmp_path / "idx" / META_FILE).read_text())
    assert meta["model_sha256"] == read_export_json(export_dir)["weights_sha256"] and meta["count"] == 6
    assert meta["preprocess"]["resize"] and meta["embedding_dim"] == 384

    write_images(tmp_path / "more", 3, seed=3)
    shutil.copy(first[0], tmp_path / "more" / "again.jpg")  # a new path with old pixels: indexed
    result = invoke("index", "add", tmp_path / "idx", tmp_path / "more", "--model", export_dir)
    assert result.exit_code == 0, result.output
    assert "added 4, skipped 0" in result.output and "10 images" in result.output
    result = invoke("index", "add", tmp_path / "idx", tmp_path / "gallery", "--model", export_dir)
    assert "added 0, skipped 6 already indexed" in result.output  # paths already in the index are skipped

    shutil.copytree(tmp_path / "more", tmp_path / "gallery" / "more")  # the same 10 images under one folder
    common = ["--model", export_dir, "--query", queries[0], "--query", queries[1], "--query-modality", "infrared",
              "--top-k", 4, "--json"]
    from_index = json.loads(invoke("search", "--index", tmp_path / "idx", *common).output)
    from_folder = json.loads(invoke("search", "--gallery", tmp_path / "gallery", "--gallery-modality", "visible",
                                    *common).output)
    assert from_index["gallery_modality"] == "visible"
    for a, b in zip(from_index["results"], from_folder["results"]):
        assert [m["cosine"] for m in a["matches"]] == pytest.approx([m["cosine"] for m in b["matches"]], abs=1e-5)
        assert [Path(m["path"]).read_bytes() for m in a["matches"]] == [Path(m["path"]).read_bytes()
                                                                         for m in b["matches"]]


def test_another_models_queries_and_an_existing_folder_are_refused(export_dir, tmp_path):
    write_images(tmp_path / "gallery", 3, seed=0)
    (query,) = write_images(tmp_path / "q", 1, seed=7)
    assert invoke("index", "build", "--model", export_dir, "--modality", "visible", "--gallery", tmp_path / "gallery",
                  "--out", tmp_path / "idx").exit_code == 0
    result = invoke("index", "build", "--model", export_dir, "--modality", "visible", "--gallery",
                    tmp_path / "gallery", "--out", tmp_path / "idx")
    assert result.exit_code == 2 and "exists" in result.output
    meta_path = tmp_path / "idx" / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["model_sha256"] = "b" * 64  # as if another model had built it
    meta_path.write_text(json.dumps(meta))
    before = {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()}
    result = invoke("search", "--index", tmp_path / "idx", "--model", export_dir, "--query", query,
                    "--query-modality", "visible")
    assert result.exit_code == 1
    assert read_export_json(export_dir)["weights_sha256"] in result.output and "b" * 64 in result.output
    result = invoke("index", "add", tmp_path / "idx", tmp_path / "gallery", "--model", export_dir)
    assert result.exit_code == 1 and "b" * 64 in result.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()} == before


def test_index_build_hnsw_records_its_parameters_and_searches(export_dir, tmp_path):
    write_images(tmp_path / "gallery", 4, seed=0)
    (query,) = write_images(tmp_path / "q", 1, seed=7)
    result = invoke("index", "build", "--model", export_dir, "--modality", "visible", "--gallery", tmp_path / "gallery",
                    "--out", tmp_path / "idx", "--kind", "hnsw", "--m", 8, "--ef-search", 8)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "idx" / META_FILE).read_text())
    assert meta["kind"] == "hnsw" and meta["parameters"]["m"] == 8 and meta["parameters"]["ef_search"] == 8
    result = invoke("search", "--index", tmp_path / "idx", "--model", export_dir, "--query", query,
                    "--query-modality", "visible", "--top-k", 4, "--json")
    assert result.exit_code == 0, result.output
    matches = json.loads(result.output)["results"][0]["matches"]
    assert len(matches) == 4 and [m["cosine"] for m in matches] == sorted((m["cosine"] for m in matches), reverse=True)
