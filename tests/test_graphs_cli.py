"""`sgp4sr graphs ...` end to end on a tiny benchmark-style split folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sgp4sr.cli.main import main
from sgp4sr.graphs import load_centres, load_graph
from sgp4sr.graphs.cooccurrence import build_cooccurrence

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


@pytest.fixture()
def split(tmp_path):
    """Tokens 10..29 occur in training; 90..99 only as validation / test targets."""
    rng = np.random.default_rng(5)
    valid, test = [HEADER], [HEADER]
    for user in range(30):
        seq = [str(t) for t in rng.integers(10, 30, size=rng.integers(1, 6))]
        v, t = str(90 + user % 5), str(95 + user % 5)
        valid.append(f"{user}\t{' '.join(seq)}\t{v}\n")
        test.append(f"{user}\t{' '.join(seq + [v])}\t{t}\n")
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.valid.inter").write_text("".join(valid))
    (folder / "toy.test.inter").write_text("".join(test))
    return folder


def test_cooccurrence_uses_training_parts_only(split, tmp_path):
    from sgp4sr.data.load import load_split

    out = tmp_path / "graphs" / "cooccurrence.npz"
    assert main(["graphs", "cooccurrence", "--data", str(split), "--out", str(out)]) == 0
    data = load_split(split)
    w = load_graph(out, n_items=data.n_items)
    held_out = np.union1d(data.valid_items, data.test_items)
    assert held_out.size == 10
    assert all(w[i].nnz == 0 for i in held_out)
    assert w[:, held_out].nnz == 0
    expected = build_cooccurrence(data.train_seqs, data.n_items)
    assert (w != expected).nnz == 0


def test_modal_graph_centres_and_summary(split, tmp_path):
    from sgp4sr.data.load import load_split

    n_items = load_split(split).n_items
    rng = np.random.default_rng(0)
    paths = {}
    for name, width in (("image", 12), ("text", 5)):
        feats = rng.normal(size=(n_items, width)).astype(np.float32)
        feats[0] = 0
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], feats)
    w_path = tmp_path / "cooccurrence.npz"
    assert main(["graphs", "cooccurrence", "--data", str(split), "--out", str(w_path)]) == 0
    stats, centres = [], []
    for name, files in (("image", [paths["image"]]), ("fused", [paths["image"], paths["text"]])):
        graph, stat, cent = (tmp_path / f"{name}_H4_m2_o0.5.npz", tmp_path / f"{name}_H4_m2_o0.5.json",
                             tmp_path / f"{name}_centres_k3_s1.npz")
        assert main(["graphs", "modal-graph", "--cooccurrence", str(w_path), "--features", *map(str, files),
                     "--modality", name, "--H", "4", "--mu-m", "2", "--mu-o", "0.5", "--threads", "1",
                     "--out", str(graph), "--stats", str(stat)]) == 0
        assert main(["graphs", "centres", "--features", *map(str, files), "--k", "3", "--seed", "1",
                     "--out", str(cent)]) == 0
        a = load_graph(graph, n_items=n_items)
        assert np.allclose(np.asarray(a.sum(axis=1)).ravel()[1:], 1.0) and a[0].nnz == 0
        c = load_centres(cent, n_items=n_items)
        assert c.k == 3 and c.seed == 1 and c.labels[0] == -1
        stats.append(str(stat))
        centres.append(str(cent))
    out = tmp_path / "summary_H4_m2_o0.5_k3.json"
    assert main(["graphs", "summary", "--cooccurrence", str(w_path), "--graph-stats", *stats,
                 "--centres", *centres, "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["cooccurrence"]["items_without_cooccurrence"] == 10
    image = summary["modalities"]["image"]
    assert (image["H"], image["H_m"], image["H_o"]) == (4, 8, 2)
    assert 0 <= image["mean_intersection"] <= 2
    assert image["items_without_cooccurrence"] == 10
    assert sum(image["clusters"]["sizes"]) == n_items - 1
    assert set(summary["modalities"]) == {"image", "fused"}
    # without centres (k = 0) the summary still works
    assert main(["graphs", "summary", "--cooccurrence", str(w_path), "--graph-stats", *stats,
                 "--out", str(out)]) == 0
    assert "clusters" not in json.loads(out.read_text())["modalities"]["image"]


def test_bad_inputs_fail_with_a_message(split, tmp_path, capsys):
    # main() installs its own log handlers, so read what reached stderr
    feats = np.zeros((5, 3), np.float32)
    np.save(tmp_path / "f.npy", feats)
    w_path = tmp_path / "cooccurrence.npz"
    assert main(["graphs", "cooccurrence", "--data", str(split), "--out", str(w_path)]) == 0
    assert main(["graphs", "centres", "--features", str(tmp_path / "f.npy"), "--k", "0", "--seed", "1",
                 "--out", str(tmp_path / "c.npz")]) == 1
    assert "k=0" in capsys.readouterr().err
    assert main(["graphs", "modal-graph", "--cooccurrence", str(w_path), "--features", str(tmp_path / "f.npy"),
                 "--modality", "image", "--H", "2", "--mu-m", "1", "--mu-o", "0", "--out",
                 str(tmp_path / "g.npz"), "--stats", str(tmp_path / "g.json")]) == 1
    assert "expected n_items=5" in capsys.readouterr().err
    assert not (tmp_path / "g.npz").exists() and not (tmp_path / "c.npz").exists()
