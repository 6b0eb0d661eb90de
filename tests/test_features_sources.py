"""Supplied features (published .b, benchmark .npy), modality noise, the manifest and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features_fixtures import random_features
from sgp4sr.cli.main import main
from sgp4sr.features.benchmark import load_benchmark_features
from sgp4sr.features.build import build_modality, merge_manifests, source_file_for
from sgp4sr.features.matrix import FeatureFileError, check_feature_matrix, fill_fallback
from sgp4sr.features.noise import add_modality_noise, noise_plan, noise_rng, parse_ratio
from sgp4sr.features.published import read_published_features, record_dtype


def write_b(path, asins, vectors):
    """The published format: 10-byte ASIN then the float32 vector, little endian, repeated."""
    with open(path, "wb") as fh:
        for asin, vec in zip(asins, vectors):
            fh.write(asin.encode("ascii"))
            fh.write(np.asarray(vec, dtype="<f4").tobytes())


# ---------------------------------------------------------------- published .b

def test_published_reader_keeps_only_wanted_items(tmp_path):
    rng = np.random.default_rng(0)
    asins = [f"B{i:09d}" for i in range(50)]
    vecs = rng.standard_normal((50, 16)).astype(np.float32)
    path = tmp_path / "image_features_Test.b"
    write_b(path, asins + [asins[3]], np.vstack([vecs, np.ones((1, 16))]))  # a duplicate record at the end
    wanted = {asins[3]: 1, asins[49]: 2, asins[0]: 3, "B999999999": 4}
    out = np.zeros((5, 16), np.float32)
    found = read_published_features(path, wanted, out, dim=16, chunk_records=7, progress=False)
    assert found.tolist() == [False, True, True, True, False]
    np.testing.assert_array_equal(out[[1, 2, 3]], vecs[[3, 49, 0]])  # the first record of asin 3 wins
    assert not out[[0, 4]].any()


def test_published_reader_rejects_a_truncated_file(tmp_path):
    path = tmp_path / "cut.b"
    write_b(path, ["B000000001", "B000000002"], np.zeros((2, 16)))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(FeatureFileError, match=rf"cut.b.*record at byte {record_dtype(16).itemsize} is truncated"):
        read_published_features(path, {"B000000001": 1}, np.zeros((2, 16), np.float32), dim=16, progress=False)


def test_published_modality_end_to_end_with_fallback(tmp_path):
    items = pd.DataFrame({"item_idx": [1, 2, 3], "item": ["B000000001", "B000000002", "short"]})
    vecs = np.arange(2 * 4096, dtype=np.float32).reshape(2, 4096)
    path = tmp_path / "image_features_Baby.b"
    write_b(path, ["B000000002", "B000000001"], vecs)
    matrix, manifest = build_modality(items, "image", {"encoder": "published", "fallback": "zero"},
                                      source_file=path, progress=False)
    assert matrix.shape == (4, 4096)
    np.testing.assert_array_equal(matrix[1], vecs[1])
    np.testing.assert_array_equal(matrix[2], vecs[0])
    assert not matrix[3].any() and not matrix[0].any()
    assert manifest["status"].tolist() == ["ok", "ok", "not_in_file"]
    assert manifest["fallback"].tolist() == ["", "", "zero"]
    vecs[0, 7] = np.nan
    write_b(path, ["B000000002", "B000000001"], vecs)
    with pytest.raises(FeatureFileError, match=r"image_features_Baby.b: the records of 1 item\(s\) contain NaN or inf \(ASIN B000000002\)"):
        build_modality(items, "image", {"encoder": "published"}, source_file=path, progress=False)


# ---------------------------------------------------------------- benchmark .npy

def bench_items(tokens):
    order = sorted(tokens, key=int)
    return pd.DataFrame({"item_idx": np.arange(1, len(order) + 1, dtype=np.int32), "item": order})


def test_benchmark_rows_follow_integer_tokens(tmp_path):
    feats = np.arange(12, dtype=np.float32).reshape(4, 3)  # row r = token r
    path = tmp_path / "toy.text.npy"
    np.save(path, feats)
    matrix = load_benchmark_features(path, bench_items(["0", "1", "2", "3"]))
    assert matrix.shape == (5, 3) and not matrix[0].any()
    np.testing.assert_array_equal(matrix[1:], feats)
    # A split whose items are a subset: the rows follow the tokens, not the positions.
    matrix = load_benchmark_features(path, bench_items(["3", "1"]))
    np.testing.assert_array_equal(matrix[1:], feats[[1, 3]])


@pytest.mark.parametrize("rows, message", [(3, "has 3 rows.*exactly 4 rows"), (6, "has 6 rows.*exactly 4 rows")])
def test_benchmark_wrong_row_count_is_rejected(tmp_path, rows, message):
    path = tmp_path / "toy.image.npy"
    np.save(path, np.ones((rows, 3), np.float32))
    with pytest.raises(FeatureFileError, match=f"toy.image.npy: {message}"):
        load_benchmark_features(path, bench_items(["0", "1", "2", "3"]))


def test_benchmark_nan_and_bad_shapes_are_rejected(tmp_path):
    items = bench_items(["0", "1", "2"])
    nan = np.ones((3, 2), np.float32)
    nan[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(FeatureFileError, match=r"nan.npy: 1 row\(s\) contain NaN or inf \(rows 2\)"):
        load_benchmark_features(tmp_path / "nan.npy", items)
    np.save(tmp_path / "flat.npy", np.ones(3, np.float32))
    with pytest.raises(FeatureFileError, match="flat.npy: expected a 2-D"):
        load_benchmark_features(tmp_path / "flat.npy", items)
    np.save(tmp_path / "ok.npy", np.ones((3, 2), np.float32))
    with pytest.raises(FeatureFileError, match="integer item tokens.*'B0001'"):
        load_benchmark_features(tmp_path / "ok.npy", pd.DataFrame({"item_idx": [1], "item": ["B0001"]}))
    with pytest.raises(FileNotFoundError, match="missing.npy does not exist"):
        load_benchmark_features(tmp_path / "missing.npy", items)


def test_check_feature_matrix_rules():
    good = random_features(5, 4)
    check_feature_matrix(good, "f", n_rows=5, dim=4, padding_row=True)
    with pytest.raises(FeatureFileError, match="f: has dimension 4, expected 8"):
        check_feature_matrix(good, "f", dim=8)
    bad = good.copy()
    bad[0, 1] = 1
    with pytest.raises(FeatureFileError, match="row 0 is the padding item"):
        check_feature_matrix(bad, "f", padding_row=True)
    bad = good.copy()
    bad[3, 0] = np.inf
    with pytest.raises(FeatureFileError, match=r"rows 3\)"):
        check_feature_matrix(bad, "f")


def test_fill_fallback_needs_something_found():
    with pytest.raises(FeatureFileError, match="no item has a feature"):
        fill_fallback(np.zeros((3, 2), np.float32), np.zeros(3, bool), "mean", "image")


def test_source_file_resolution():
    ds = {"source": "benchmark", "name": "baby", "path": "/data/split",
          "files": {"image_features": {"url": "http://x.org/f/image_features_Baby.b?dl=1"}},
          "modalities": {"text": {"encoder": "benchmark"}, "image": {"encoder": "published"},
                         "own": {"encoder": "benchmark", "file": "/my/own.npy"}, "s": {"encoder": "sentence"}}}
    assert source_file_for(ds, "text", "dl") == "/data/split/baby.text.npy"
    assert source_file_for(ds, "image", "dl") == "dl/image_features_Baby.b"
    assert source_file_for(ds, "own", "dl") == "/my/own.npy"
    assert source_file_for(ds, "s", "dl") is None
    with pytest.raises(ValueError, match="needs a file: set modalities.image.file or files.image_features"):
        source_file_for({"modalities": {"image": {"encoder": "published"}}}, "image", "dl")


# ---------------------------------------------------------------- noise

@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 1.0])
def test_noise_changes_exactly_the_chosen_rows(ratio):
    feats = random_features(201, 6, seed=1)
    noisy, chosen = add_modality_noise(feats, ratio, seed=5, modality="image")
    changed = np.flatnonzero((noisy != feats).any(axis=1))
    assert len(chosen) == round(ratio * 200) == len(changed)
    assert set(changed) == set(chosen) and 0 not in chosen
    assert not noisy[0].any()
    # Each chosen row is another item's clean row, never its own.
    for i in chosen:
        matches = np.flatnonzero((feats == noisy[i]).all(axis=1))
        assert len(matches) == 1 and matches[0] not in (0, i)


def test_noise_is_deterministic_nested_and_per_modality():
    feats = random_features(101, 4, seed=2)
    a, chosen_a = add_modality_noise(feats, 0.3, seed=9, modality="image")
    b, chosen_b = add_modality_noise(feats, 0.3, seed=9, modality="image")
    np.testing.assert_array_equal(a, b)
    _, chosen_small = add_modality_noise(feats, 0.1, seed=9, modality="image")
    assert set(chosen_small) <= set(chosen_a)
    _, other_seed = add_modality_noise(feats, 0.3, seed=10, modality="image")
    _, other_modality = add_modality_noise(feats, 0.3, seed=9, modality="text")
    assert set(other_seed) != set(chosen_a) and set(other_modality) != set(chosen_a)


def test_noise_plan_on_two_items_swaps_them():
    chosen, donors = noise_plan(3, 1.0, noise_rng(0, "x"))
    assert sorted(chosen) == [1, 2] and dict(zip(chosen, donors)) == {1: 2, 2: 1}


def test_noise_rejects_a_bad_matrix_and_ratio():
    feats = random_features(10, 3)
    feats[4, 0] = np.nan
    with pytest.raises(FeatureFileError, match="image.npy: 1 row"):
        add_modality_noise(feats, 0.1, seed=0, modality="image", source="image.npy")
    assert parse_ratio("0.1") == 0.1 and parse_ratio("1") == 1.0
    for text in ("0.10", "1.0", "abc", "0", "1.5"):
        with pytest.raises(ValueError):
            parse_ratio(text)


# ---------------------------------------------------------------- manifest + CLI

def manifest_of(modality, found):
    n = len(found)
    return pd.DataFrame({"item_idx": np.arange(1, n + 1, dtype=np.int32), "item": [f"i{k}" for k in range(n)],
                         "modality": modality, "found": found, "source": "text",
                         "status": ["ok" if f else "empty_text" for f in found],
                         "fallback": ["" if f else "mean" for f in found]})


def test_merge_manifests_is_wide_per_item():
    merged = merge_manifests([manifest_of("image", [True, False]), manifest_of("text", [True, True])])
    assert list(merged.columns) == ["item_idx", "item", "image_found", "image_source", "image_status",
                                    "image_fallback", "text_found", "text_source", "text_status", "text_fallback"]
    assert merged["image_found"].tolist() == [True, False] and merged["text_found"].all()
    with pytest.raises(ValueError, match="covers different items"):
        merge_manifests([manifest_of("image", [True, False]), manifest_of("text", [True, True, True])])
    with pytest.raises(ValueError, match="appears in two manifests"):
        merge_manifests([manifest_of("image", [True]), manifest_of("image", [True])])


def test_cli_benchmark_noise_and_manifest(tmp_path):
    items = bench_items(["0", "1", "2", "3", "4"])
    items.to_parquet(tmp_path / "items.parquet", index=False)
    np.save(tmp_path / "toy.image.npy", np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    out = tmp_path / "features"
    rc = main(["--log", str(tmp_path / "enc.log"), "features", "encode", "--items", str(tmp_path / "items.parquet"),
               "--modality", "image", "--config", '{"encoder": "benchmark"}', "--source-file",
               str(tmp_path / "toy.image.npy"), "--out", str(out / "image.npy"),
               "--manifest-out", str(out / "image.manifest.parquet"), "--no-progress"])
    assert rc == 0
    assert np.load(out / "image.npy").shape == (6, 3)
    assert main(["features", "noise", "--features", str(out / "image.npy"), "--modality", "image",
                 "--ratio", "0.4", "--seed", "3", "--out", str(out / "image@noise0.4.npy")]) == 0
    noisy = np.load(out / "image@noise0.4.npy")
    assert ((noisy != np.load(out / "image.npy")).any(axis=1)).sum() == 2
    assert main(["features", "manifest", str(out / "image.manifest.parquet"), "--out", str(out / "manifest.parquet")]) == 0
    assert pd.read_parquet(out / "manifest.parquet")["image_found"].all()
    # A bad file fails the command with the reason in the log, and leaves no output behind.
    np.save(tmp_path / "bad.npy", np.ones((3, 3), np.float32))
    rc = main(["--log", str(tmp_path / "bad.log"), "features", "encode", "--items", str(tmp_path / "items.parquet"),
               "--modality", "image", "--config", '{"encoder": "benchmark"}', "--source-file",
               str(tmp_path / "bad.npy"), "--out", str(out / "bad.npy"), "--manifest-out", str(out / "bad.parquet")])
    assert rc == 1 and "bad.npy: has 3 rows" in (tmp_path / "bad.log").read_text()
    assert not (out / "bad.npy").exists()
