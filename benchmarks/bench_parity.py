"""Parity with the reference framework: our engine and RecBole 1.2.1 on the same split files.

For every dataset, model and seed, the same model is trained twice, once by
our engine and once by RecBole 1.2.1 itself, from the same exported split
(RecBole's ``benchmark_filename`` layout: every training prefix in
``<name>.train.inter``, one validation and one test row per user), with the
same hyper-parameters (:data:`RECBOLE_KEYS` is the one mapping from our
config keys to RecBole's), the same protocol (full ranking over all items,
validation Recall@5 for early stopping, the best validation epoch tested)
and one CPU thread each. Keys RecBole has and we do not (its Transformer's
``inner_size``, ``hidden_act``, ``layer_norm_eps``) stay at RecBole's own
defaults: RecBole is run as its users run it. Item features reach RecBole as
``float_seq`` fields of ``<name>.item`` (``selected_features``), the way its
SASRecF and FDSA read dense features.

Dense features in RecBole 1.2.1: as released it gives every value of a
``float_seq`` field the same embedding index, so FDSA and SASRecF see
``mean(x) * e_1``, one scalar per item (RecBole issue #2043;
``--check-float-seq`` prints the measured deviation from that formula). The
framework ``recbole-fix`` is RecBole with each dimension indexed on its own
(``_index_float_seq_dimensions``), which makes that embedding the linear map
``sum_j x_j e_j / D`` it was meant to be; the verdict is given against each
reference run. RecBole's layer materialises ``batch x length x D x d``
values, so ``--feature-dim N`` feeds both frameworks each modality's first N
principal components (dataset ``NAME-pcaN``) at a cost a CPU pays.

Printed: one Markdown table, per dataset and model, mean ± std over seeds of
test R@10, N@10, R@50, N@50, seconds per training epoch, the best epoch,
the wall time to reach it (training + validation up to and including the
best epoch), the whole run's wall time and peak RSS, and a verdict: ours
``>= RecBole mean - 1 std`` on R@10 and N@10.

RecBole runs in its own virtualenv (``--venv``; made on first use with
``recbole==1.2.1`` and the pins it needs: numpy < 2, pandas < 2.2, scipy < 1.13,
this interpreter's torch version). RecBole turns on autograd anomaly detection
globally when imported; the runner switches it off again.

Every run writes ``<out>/<dataset>/<framework>/<model>/seed<k>.json`` and is
skipped when that file exists, so an interrupted benchmark resumes; an
interrupted run resumes after its last finished epoch from the checkpoints in
``seed<k>.state/`` (our engine's own, RecBole's ``resume_checkpoint`` with the
epoch records beside it; removed once the result is written), so the Baby runs
can span sessions. Example
(the demo and ml-100k, after ``snakemake --cores 2 results/demo/features/image.npy
results/demo/features/text.npy`` and the ml-100k config of config/README.md):

    python benchmarks/bench_parity.py \\
        --data demo=results/demo/data:results/demo/features \\
        --data ml100k=results/ml100k/data:results/ml100k/features \\
        --models sasrec,gru4rec,bert4rec,fdsa,sasrecf --seeds 1,2,3 --jobs 2

FDSA and SASRecF against both RecBoles on 32 principal components:
``--data demo=... --feature-dim 32 --models fdsa,sasrecf --frameworks ours,recbole,recbole-fix``.
The authors' Baby split (ID models only): ``--data baby=../shared/data/amazon-baby-paper-split``
with ``--hidden 300 --models sasrec,bert4rec`` (hours on a CPU: run it in the background).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_baselines import PARAMS  # noqa: E402  (our parameters of each model besides hidden_size)

DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sgp4sr-parity" / "recbole-venv"
RECBOLE_PINS = ["recbole==1.2.1", "numpy<2", "pandas<2.2", "scipy<1.13", "ray<2.10"]
FEATURE_MODELS = {"fdsa", "sasrecf"}
RECBOLE_FIX = "recbole-fix"  # RecBole with its float_seq fields indexed per dimension (feature models only)
FRAMEWORKS = ("ours", "recbole", RECBOLE_FIX)
METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")

#: the one mapping from our keys (model parameters and ``training`` keys) to RecBole's config keys
RECBOLE_KEYS: dict[str, tuple[str, ...]] = {
    "hidden_size": ("hidden_size", "embedding_size"),
    "layers": ("n_layers", "num_layers"),
    "heads": ("n_heads",),
    "dropout": ("hidden_dropout_prob", "attn_dropout_prob", "dropout_prob"),
    "mask_ratio": ("mask_ratio",),
    "batch_size": ("train_batch_size",),
    "eval_batch_size": ("eval_batch_size",),
    "lr": ("learning_rate",),
    "weight_decay": ("weight_decay",),
    "epochs": ("epochs",),
    "patience": ("stopping_step",),
    "max_len": ("MAX_ITEM_LIST_LENGTH",),
}
RECBOLE_MODELS = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "bert4rec": "BERT4Rec", "fdsa": "FDSA",
                  "sasrecf": "SASRecF"}


def recbole_config(model: str, params: dict[str, Any], training: dict[str, Any], features: list[str],
                   seed: int) -> dict[str, Any]:
    """RecBole's config dict for one run: mapped keys plus the protocol (benchmark files, CE, full ranking)."""
    cfg: dict[str, Any] = {}
    for key, value in {**params, **training}.items():
        for name in RECBOLE_KEYS.get(key, ()):
            cfg[name] = value
    if model == "fdsa":
        features = [params.get("feature", "text")]
    cfg.update({
        "seed": seed, "reproducibility": True, "use_gpu": False, "show_progress": False, "worker": 0,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": None, "RATING_FIELD": None,
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"],
                     **({"item": ["item_id", *features]} if model in FEATURE_MODELS else {})},
        "benchmark_filename": ["train", "valid", "test"], "alias_of_item_id": ["item_id_list"],
        "loss_type": "CE", "train_neg_sample_args": None,
        "eval_args": {"mode": "full", "order": "TO", "group_by": "user"},
        "metrics": ["Recall", "NDCG"], "topk": [5, 10, 50], "valid_metric": "Recall@5", "eval_step": 1,
    })
    if model in FEATURE_MODELS:
        cfg["selected_features"] = features
        cfg["numerical_features"] = features  # RecBole embeds float_seq fields only when listed here
    return cfg


# -- export ---------------------------------------------------------------------------------------------
def export_split(data: Path, features: Path | None, names: list[str], name: str, out: Path, max_len: int) -> None:
    """Write ``<name>.{train,valid,test}.inter`` (and ``<name>.item`` with the ``names`` features of ``features``).

    Each file is replaced atomically: a RecBole run of an earlier invocation may be reading them."""
    from sgp4sr.data.load import load_split
    from sgp4sr.io import atomic_path

    split = load_split(data)
    out.mkdir(parents=True, exist_ok=True)

    def rows(path: Path, pairs: list[tuple[int, np.ndarray, int]]) -> None:
        with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "w") as f:
            f.write("user_id:token\titem_id_list:token_seq\titem_id:token\n")
            for u, hist, target in pairs:
                f.write(f"u{u}\t{' '.join(f'i{i}' for i in hist[-max_len:])}\ti{target}\n")

    train = [(u, s[:j], int(s[j])) for u, s in enumerate(split.train_seqs) for j in range(1, len(s))]
    valid = [(u, s, int(v)) for u, (s, v) in enumerate(zip(split.train_seqs, split.valid_items))]
    test = [(u, np.append(s, v), int(t)) for u, (s, v, t) in
            enumerate(zip(split.train_seqs, split.valid_items, split.test_items))]
    rows(out / f"{name}.train.inter", train)
    rows(out / f"{name}.valid.inter", valid)
    rows(out / f"{name}.test.inter", test)
    if names:
        tables = {n: np.load(features / f"{n}.npy") for n in names}
        with atomic_path(out / f"{name}.item", suffix=".tmp") as tmp, open(tmp, "w") as f:
            f.write("item_id:token\t" + "\t".join(f"{n}:float_seq" for n in names) + "\n")
            for i in range(1, split.n_items):
                cols = "\t".join(" ".join(f"{x:.6g}" for x in tables[n][i]) for n in names)
                f.write(f"i{i}\t{cols}\n")


def reduce_features(features: Path, names: list[str], dim: int, out: Path) -> Path:
    """Each modality of ``features`` projected on its first ``dim`` principal components, in ``out``.

    RecBole embeds a ``float_seq`` field of width D by giving each of its D values its own
    embedding vector (``batch x length x D x d`` values per step), so its FDSA and SASRecF
    cost grows with D; fed the same narrower vectors, both frameworks are compared on the
    same inputs at a cost a CPU pays. The fit uses the item rows (row 0, padding, stays zero);
    PCA here is exact (full SVD), hence deterministic. Files are written atomically."""
    from sklearn.decomposition import PCA

    from sgp4sr.io import save_npy

    for n in names:
        table = np.load(features / f"{n}.npy").astype(np.float64)
        if dim >= table.shape[1]:
            raise SystemExit(f"--feature-dim {dim} is not below {features / f'{n}.npy'}'s width {table.shape[1]}")
        reduced = np.zeros((table.shape[0], dim), dtype=np.float32)
        reduced[1:] = PCA(n_components=dim, svd_solver="full").fit_transform(table[1:])
        save_npy(out / f"{n}.npy", reduced)
    return out


# -- the two runners (each in its own process) ------------------------------------------------------------
def run_ours(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from sgp4sr.engine.run import RunSpec, run_training

    torch.set_num_threads(1)
    started = time.perf_counter()
    with state_dir(job) as out:  # our engine checkpoints every epoch there and resumes from it
        features = Path(job["features"]) if job["features"] else None
        spec = RunSpec(data=Path(job["data"]), out=out, model=job["model"], seed=job["seed"],
                       training=job["training"], model_params=job["params"], features=features,
                       modalities=job["features_used"] if job["model"] in FEATURE_MODELS else [],
                       threads=1, dataset=job["dataset"])
        metrics = run_training(spec)
    curve = metrics["curve"]
    best = metrics["best_epoch"]
    return {"test": {m: metrics["test"][m] for m in METRICS}, "best_epoch": best, "epochs_run": len(curve),
            "seconds_per_epoch": metrics["seconds_per_epoch"],
            "time_to_best": sum(h["train_seconds"] + h["eval_seconds"] for h in curve[:best]),
            "steps_per_epoch": curve[0].get("steps") if curve else None,
            "curve": [h["valid"][job["training"]["valid_metric"]] for h in curve],
            "resumed_from_epoch": metrics["resumed_from_epoch"],  # > 0: wall_seconds is the last process's
            "wall_seconds": time.perf_counter() - started, "peak_rss_mb": _peak_rss_mb()}


def run_recbole(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    torch.autograd.set_detect_anomaly(False)  # RecBole switches it on globally at import
    torch.set_num_threads(1)
    started = time.perf_counter()
    with state_dir(job) as tmp:
        cfg = {**job["recbole"], "data_path": job["export"], "checkpoint_dir": str(tmp)}
        config = Config(model=RECBOLE_MODELS[job["model"]], dataset=job["dataset"], config_dict=cfg)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        if job["framework"] == RECBOLE_FIX:
            for loader in (train_data, valid_data, test_data):
                _index_float_seq_dimensions(loader._dataset, config["selected_features"])
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        if job["model"] == "sasrecf":
            _fix_sasrecf_concat(model, len(config["selected_features"]))
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        epochs: list[dict[str, float]] = []
        train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

        def timed_train(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = train_epoch(*args, **kwargs)
            epochs.append({"train": time.perf_counter() - t0})
            return out

        def timed_valid(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            score, result = valid_epoch(*args, **kwargs)
            epochs[-1].update(valid=time.perf_counter() - t0, score=float(score))
            return score, result

        trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
        best_file, resume_file = tmp / "best.pth", tmp / "resume.pth"
        identity = run_identity(job)
        resumed = torch.load(resume_file, map_location="cpu", weights_only=False) if resume_file.exists() else None
        if resumed is not None and resumed.get("parity_identity") != identity:
            print(f"discarding {resume_file}: another run's (job or exported split changed)", file=sys.stderr)
            resumed = None
        best: dict[str, Any] = {}
        if resumed is not None:  # an interrupted run: RecBole's own resume, our records and streams beside it
            trainer.resume_checkpoint(str(resume_file))
            epochs.extend(resumed["parity_epochs"])
            best = resumed["parity_best"]
            _atomic_save(torch, {"config": config, **best}, best_file)  # what evaluate() reloads
            _set_rng_state(torch, resumed["parity_rng"], train_data)
            print(f"resuming after epoch {trainer.start_epoch}", file=sys.stderr, flush=True)
        trainer.saved_model_file = str(best_file)
        save_checkpoint = trainer._save_checkpoint

        def save_best(epoch: int, verbose: bool = True, **kwargs: Any) -> None:
            """RecBole's best-epoch checkpoint, written atomically (a kill mid-write keeps the last one)."""
            with _replacing(best_file) as partial:
                save_checkpoint(epoch, verbose=verbose, saved_model_file=str(partial))

        def save_resume(epoch_idx: int, _score: float) -> None:
            """After every validated epoch (RecBole's callback, after its early-stopping update and best save)."""
            if trainer.cur_step == 0:  # this epoch is the new best (RecBole resets the counter on >=)
                best.update(state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                            other_parameter=model.other_parameter(), epoch=epoch_idx)
            state = {"config": config, "epoch": epoch_idx, "cur_step": trainer.cur_step,
                     "best_valid_score": trainer.best_valid_score, "state_dict": model.state_dict(),
                     "other_parameter": model.other_parameter(), "optimizer": trainer.optimizer.state_dict(),
                     "parity_identity": identity, "parity_epochs": epochs, "parity_best": best,
                     "parity_rng": _rng_state(torch, train_data)}
            _atomic_save(torch, state, resume_file)

        trainer._save_checkpoint = save_best
        resumed_from = trainer.start_epoch
        finished = trainer.cur_step > trainer.stopping_step or trainer.start_epoch >= trainer.epochs
        if not finished:  # (stopped after its last epoch, before the test: RecBole's fit would overwrite best.pth)
            trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=save_resume)
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    scores = [e["score"] for e in epochs]
    best_epoch = last_best_epoch(scores)
    return {"test": {m: float(test[m]) for m in METRICS}, "best_epoch": best_epoch, "epochs_run": len(epochs),
            "seconds_per_epoch": float(np.mean([e["train"] for e in epochs])),
            "time_to_best": sum(e["train"] + e.get("valid", 0.0) for e in epochs[:best_epoch]), "curve": scores,
            "resumed_from_epoch": resumed_from, "wall_seconds": time.perf_counter() - started, "peak_rss_mb": _peak_rss_mb()}


def last_best_epoch(scores: list[float]) -> int:
    """The 1-based epoch whose weights RecBole tests: the *last* of the best scores (its early stopping
    updates on ``>=``, so a tie moves the best checkpoint forward)."""
    return len(scores) - int(np.argmax(scores[::-1]))


def run_identity(job: dict[str, Any]) -> str:
    """What a resume checkpoint must match: the job (without its state folder) and the exported split's
    contents (re-exported on every invocation, so its file times say nothing)."""
    import hashlib

    digest = hashlib.sha256()
    folder = Path(job["export"]) / job["dataset"]
    for path in sorted(folder.glob(f"{job['dataset']}.*")):
        digest.update(path.name.encode() + path.read_bytes())
    return json.dumps({"job": {k: v for k, v in job.items() if k != "state"}, "split": digest.hexdigest()},
                      sort_keys=True)


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A file written at ``path``'s ``.partial`` sibling takes ``path``'s place only once it is complete (RecBole's
    interpreter runs without our package, so not :mod:`sgp4sr.io`)."""
    partial = path.with_suffix(".partial")
    yield partial
    os.replace(partial, path)


def _atomic_save(torch: Any, state: dict[str, Any], path: Path) -> None:
    with _replacing(path) as partial:
        torch.save(state, partial, pickle_protocol=4)


def _rng_state(torch: Any, train_data: Any) -> dict[str, Any]:
    """Every random stream a RecBole epoch draws from: Python's, numpy's, torch's and the train loader's."""
    import random

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "loader": train_data.generator.get_state()}


def _set_rng_state(torch: Any, state: dict[str, Any], train_data: Any) -> None:
    import random

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    train_data.generator.set_state(state["loader"])


@contextmanager
def state_dir(job: dict[str, Any]) -> Iterator[Path]:
    """Where a run keeps its checkpoints: ``job["state"]`` (kept across an interruption, so the next
    invocation resumes the run after its last finished epoch), else a temporary folder."""
    if job.get("state"):
        path = Path(job["state"])
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)


def _index_float_seq_dimensions(dataset: Any, fields: list[str]) -> None:
    """RecBole 1.2.1 as its float_seq embedding is meant to work (``recbole-fix``).

    As released, RecBole gives every value of a ``float_seq`` field the same index 1 (its
    ``_discretization`` sets all indices to one unless a discretisation is configured) and an
    embedding table of ``field2bucketnum = 2`` rows, so the field's embedding is
    ``mean(x) * e_1``: one scalar per item reaches FDSA and SASRecF (RecBole issue #2043;
    checked numerically by ``--check-float-seq``). Here value ``j`` of an item gets index
    ``j + 1`` (padding rows keep 0) and the table ``D + 1`` rows, so the mean pooling gives
    ``sum_j x_j e_j / D``: a linear map of the whole vector, what our ``Linear(D, d)`` is up
    to the bias and a scale. Nothing else in RecBole changes."""
    import torch

    for field in fields:
        feat = dataset.item_feat[field]  # [n_items, D, 2]: value, index
        width = feat.shape[1]
        positions = torch.arange(1, width + 1, dtype=feat.dtype).expand(feat.shape[0], width)
        feat[..., 1] = torch.where(feat[..., 1] != 0, positions, torch.zeros_like(positions))
        dataset.field2bucketnum[field] = width + 1


def check_float_seq(job: dict[str, Any]) -> dict[str, Any]:
    """What RecBole's FDSA feature layer makes of the exported features, as released and with the fix.

    Builds the dataset and an FDSA model (no training) and returns the largest deviation of its
    feature embeddings of items 1-5 from ``mean(x) * e_1`` (as released) and from
    ``sum_j x_j e_j / D`` (``recbole-fix``): 0 up to rounding when that is what it computes."""
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    torch.autograd.set_detect_anomaly(False)
    field = job["recbole"]["selected_features"][0]
    out: dict[str, Any] = {"field": field}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {**job["recbole"], "data_path": job["export"], "checkpoint_dir": tmp}
        config = Config(model="FDSA", dataset=job["dataset"], config_dict=cfg)
        for framework in ("recbole", RECBOLE_FIX):
            init_seed(config["seed"], config["reproducibility"])
            train_data = data_preparation(config, create_dataset(config))[0]
            if framework == RECBOLE_FIX:
                _index_float_seq_dimensions(train_data._dataset, [field])
            layer = get_model("FDSA")(config, train_data._dataset).feature_embed_layer
            table = layer.float_seq_embedding_table["item"][0].weight
            values = layer.item_feat[field][1:6, :, 0]
            with torch.no_grad():
                got = layer(None, torch.arange(1, 6).view(1, 5))[1]["item"].reshape(5, -1)
                mean_e1 = values.mean(-1, keepdim=True) * table[1]
                linear = values @ table[1:values.shape[1] + 1] / values.shape[1] if table.shape[0] > 2 else None
            out[framework] = {"table_rows": int(table.shape[0]),
                              "max_dev_mean_e1": float((got - mean_e1).abs().max()),
                              "max_dev_linear": None if linear is None else float((got - linear).abs().max())}
    return out


def _fix_sasrecf_concat(model: Any, n_fields: int) -> None:
    """RecBole 1.2.1's SASRecF sizes its concat layer as if a ``float_seq`` field gave ``dataset.num(field)``
    (= 2) vectors, while its feature layer pools each such field to one: the first forward pass fails with a
    shape error. Re-make the layer at the size the forward pass feeds it, with RecBole's own initialisation."""
    from torch import nn

    d = model.hidden_size
    model.concat_layer = nn.Linear(d * (1 + n_fields), d)
    model._init_weights(model.concat_layer)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- driver -------------------------------------------------------------------------------------------------
def ensure_venv(venv: Path) -> Path:
    """The RecBole virtualenv's python, made (with this torch version, so no other build is fetched) if missing."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    import torch

    print(f"# creating {venv} with {' '.join(RECBOLE_PINS)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *RECBOLE_PINS, torch_pin], check=True)
    return python


def config_train_forms(config: dict[str, Any]) -> dict[str, str]:
    """Our engine's training form of each benchmarked model under ``config`` (``--train-form config``):
    ``training.train_form`` overridden by ``model_training.<model>``, as the workflow resolves it."""
    from sgp4sr.config import model_training_settings

    return {model: model_training_settings(config, model)["train_form"] for model in PARAMS}


def run_child(job: dict[str, Any], python: str, **kwargs: Any) -> tuple[int, dict[str, Any] | None]:
    """``--one job`` in a one-thread subprocess of ``python`` (RecBole's without our PYTHONPATH):
    its exit status and the JSON of its last stdout line (None on failure)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if job["framework"] != "ours":
        env.pop("PYTHONPATH", None)
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # RecBole 1.2.1 reloads its own pickled checkpoint
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--one", json.dumps(job)],
                          stdout=subprocess.PIPE, text=True, env=env, **kwargs)
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None


def run_job(job: dict[str, Any], python: str, path: Path) -> dict[str, Any]:
    from sgp4sr.io import write_json
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_suffix(".log")
    # checkpoints of an unfinished run (removed once its result is written); absolute: the child runs in path's folder
    state = path.with_suffix(".state").resolve()
    with open(log, "a") as f:
        # RecBole writes log/ and log_tensorboard/ into its working directory: keep them beside the run
        code, out = run_child({**job, "state": str(state)}, python, stderr=f, cwd=path.parent)
    if out is None:
        raise RuntimeError(f"{job['framework']} {job['model']} seed {job['seed']} on {job['dataset']} failed "
                           f"(exit {code}); see {log}")
    result = {**out, "job": job}
    write_json(path, result)
    shutil.rmtree(state, ignore_errors=True)
    print(f"# {job['dataset']} {job['framework']:7s} {job['model']:8s} seed {job['seed']}: "
          f"R@10 {result['test']['recall@10']:.4f} N@10 {result['test']['ndcg@10']:.4f} "
          f"best epoch {result['best_epoch']}/{result['epochs_run']}, {result['seconds_per_epoch']:.1f} s/epoch",
          file=sys.stderr, flush=True)
    return result


def steps_table(datasets: list[tuple[str, Path]], batch_size: int, max_len: int) -> None:
    """Optimiser steps per epoch of both training forms at ``batch_size`` targets (what RecBole takes too)."""
    from sgp4sr.data.load import load_split
    from sgp4sr.engine.sequences import epoch_batches, training_examples

    print("| dataset | targets | prefix rows | one-pass rows | prefix steps | one-pass steps | ratio |")
    print("|" + "---|" * 7)
    for name, data in datasets:
        split = load_split(data)
        ex = {form: training_examples(split.train_seqs, max_len, form, split.n_items) for form in ("prefix", "onepass")}
        steps = {form: len(epoch_batches(e, batch_size, np.random.default_rng(0))) for form, e in ex.items()}
        print(f"| {name} | {ex['prefix'].n_targets:,} | {len(ex['prefix']):,} | {len(ex['onepass']):,} "
              f"| {steps['prefix']:,} | {steps['onepass']:,} | {steps['onepass'] / steps['prefix']:.3f} |")
    print()


def summarise(results: list[dict[str, Any]]) -> None:
    def ms(values: list[float], fmt: str = ".4f") -> str:
        return f"{np.mean(values):{fmt}} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:{fmt}}"

    print("| dataset | model | framework | seeds | R@10 | N@10 | R@50 | N@50 | s/epoch | best epoch | "
          "s to best | wall s | peak RSS MB | ours >= RecBole - 1 sd |")
    print("|" + "---|" * 14)
    keys = sorted({(r["job"]["dataset"], r["job"]["model"]) for r in results})
    for ds, model in keys:
        group = {fw: [r for r in results if r["job"]["dataset"] == ds and r["job"]["model"] == model
                      and r["job"]["framework"] == fw] for fw in FRAMEWORKS}
        verdicts = []
        for reference in FRAMEWORKS[1:]:
            if not (group["ours"] and group[reference]):
                continue
            ok = []
            for m in ("recall@10", "ndcg@10"):
                ref = [r["test"][m] for r in group[reference]]
                sd = np.std(ref, ddof=1) if len(ref) > 1 else 0.0
                ok.append(np.mean([r["test"][m] for r in group["ours"]]) >= np.mean(ref) - sd)
            verdicts.append(("yes" if all(ok) else "**no**") + ("" if reference == "recbole" else f" ({reference})"))
        verdict = ", ".join(verdicts)
        for fw, rows in group.items():
            if not rows:
                continue
            t = {m: [r["test"][m] for r in rows] for m in METRICS}
            print(f"| {ds} | {model} | {fw} | {len(rows)} | " + " | ".join(ms(t[m]) for m in METRICS) +
                  f" | {ms([r['seconds_per_epoch'] for r in rows], '.1f')} "
                  f"| {ms([r['best_epoch'] for r in rows], '.1f')} | {ms([r['time_to_best'] for r in rows], '.0f')} "
                  f"| {ms([r['wall_seconds'] for r in rows], '.0f')}"
                  f"{' (resumed: last process)' if any(r.get('resumed_from_epoch') for r in rows) else ''} "
                  f"| {max(r['peak_rss_mb'] for r in rows):.0f} | {verdict if fw == 'ours' else ''} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", default=[],
                   help="NAME=SPLIT_DIR[:FEATURES_DIR] (repeatable); a split folder of ours or a benchmark folder")
    p.add_argument("--models", default="sasrec,gru4rec,bert4rec,fdsa,sasrecf")
    p.add_argument("--frameworks", default="ours,recbole")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256, help="training targets per step (both frameworks)")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--train-form", default="config", choices=["config", "onepass", "prefix"],
                   help="our engine's form; config: each model's form in config/config.yaml (BERT4Rec prefix)")
    p.add_argument("--feature-dim", type=int, default=None,
                   help="feed both frameworks each modality's first N principal components (dataset NAME-pcaN)")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side (each one thread)")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    p.add_argument("--out", type=Path, default=Path("results/parity"))
    p.add_argument("--steps-only", action="store_true", help="print the steps-per-epoch table and stop")
    p.add_argument("--summary-only", action="store_true",
                   help="print the table of the runs already in --out (nothing is trained)")
    p.add_argument("--check-float-seq", action="store_true",
                   help="print what RecBole's feature layer computes from each dataset's features (no training)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        job = json.loads(args.one)
        result = (check_float_seq(job) if job.get("check") else
                  run_ours(job) if job["framework"] == "ours" else run_recbole(job))
        print(json.dumps(result))
        return
    if not args.data:
        p.error("give at least one --data NAME=SPLIT_DIR[:FEATURES_DIR]")
    from sgp4sr.engine.context import discover_modalities  # the driver runs in our environment
    steps_table([(d.partition("=")[0], Path(d.partition("=")[2].partition(":")[0])) for d in args.data],
                args.batch_size, args.max_len)
    if args.steps_only:
        return
    frameworks = args.frameworks.split(",")
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        p.error(f"--frameworks: unknown {sorted(unknown)}; choose from {', '.join(FRAMEWORKS)}")
    python = str(ensure_venv(args.venv)) if set(frameworks) - {"ours"} else sys.executable
    training = {"epochs": args.epochs, "patience": args.patience, "batch_size": args.batch_size, "lr": args.lr,
                "max_len": args.max_len, "eval_batch_size": 512, "weight_decay": 0.0, "valid_metric": "recall@5",
                "topk": [5, 10, 50], "device": "cpu"}
    import yaml

    defaults = yaml.safe_load((HERE.parent / "config" / "config.yaml").read_text())
    default_form = defaults["training"]["train_form"]
    forms = config_train_forms(defaults)
    jobs: list[tuple[dict[str, Any], str, Path]] = []
    for spec in args.data:
        name, _, paths = spec.partition("=")
        data, _, features = paths.partition(":")
        used = discover_modalities(features or None)  # a reduced folder holds the same modalities
        if args.feature_dim and features:
            name = f"{name}-pca{args.feature_dim}"
            target = args.out / name / "features"
            features = str(target if args.summary_only else
                           reduce_features(Path(features), used, args.feature_dim, target))
        export = (args.out / name / "recbole-files").resolve()
        if not args.summary_only:  # a summary trains nothing; a running RecBole job may be reading these
            export_split(Path(data), Path(features) if features else None, used, name, export / name, args.max_len)
        for model in args.models.split(","):
            if model in FEATURE_MODELS and not used:
                print(f"# {name}: no features, {model} skipped", file=sys.stderr)
                continue
            params = {"hidden_size": args.hidden, **PARAMS[model]}
            form = forms[model] if args.train_form == "config" else args.train_form
            model_training = {**training, "train_form": form}
            for seed in (int(s) for s in args.seeds.split(",")):
                for fw in frameworks:
                    if fw == RECBOLE_FIX and model not in FEATURE_MODELS:
                        continue  # the same run as plain RecBole
                    job = {"framework": fw, "dataset": name, "model": model, "seed": seed,
                           "data": str(Path(data).resolve()),
                           "features": str(Path(features).resolve()) if features else None,
                           "features_used": used, "params": params,
                           "training": model_training,
                           "export": str(export), "recbole": recbole_config(model, params, model_training, used,
                                                                            seed)}
                    jobs.append((job, sys.executable if fw == "ours" else python,
                                 args.out / name / fw / model / f"seed{seed}.json"))
    if args.check_float_seq:
        checked: set[str] = set()
        for job, *_ in jobs:
            if job["dataset"] in checked or not job["features_used"]:
                continue
            checked.add(job["dataset"])
            job = {**job, "check": True, "model": "fdsa",
                   "recbole": recbole_config("fdsa", {**job["params"], "feature": job["features_used"][0]},
                                             job["training"], job["features_used"], job["seed"])}
            code, out = run_child(job, python)
            if out is None:
                raise SystemExit(f"--check-float-seq on {job['dataset']} failed (exit {code})")
            print(json.dumps({"dataset": job["dataset"], **out}))
        return
    if args.summary_only:
        results = [{**json.loads(path.read_text()), "job": job} for job, _, path in jobs if path.exists()]
    else:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda j: run_job(*j), jobs))
    others = {m: f for m, f in forms.items() if f != default_form}
    print(f"# parity: {len(results)} runs; d = {args.hidden}, batch {args.batch_size} targets, lr {args.lr}, "
          f"max_len {args.max_len}, up to {args.epochs} epochs, patience {args.patience}, our form "
          f"{args.train_form if args.train_form != 'config' else f'{default_form} ({others} as config/config.yaml)'}, "
          f"one thread per run, {args.jobs} side by side")
    summarise(results)


if __name__ == "__main__":
    main()
