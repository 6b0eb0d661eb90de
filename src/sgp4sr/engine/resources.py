"""Memory and wall-time estimates of a training job, for Snakemake's ``resources`` and SLURM.

A scheduler needs ``mem_mb`` and ``runtime`` before the job starts. A fixed
16 GB per job serialises a laptop's or a cluster's jobs for no reason (a d = 64
SGP4SR on 1,400 items peaks at about 2.3 GB), so the train rule asks
:func:`estimate_training` once the job's inputs exist (Snakemake evaluates
resource callables when the job is scheduled). The estimate is deliberately
coarse and errs high; each constant below says where it was measured.
``--set-resources train:mem_mb=...`` overrides it for one rule.

Memory: the Python + torch process (``BASE_MB``) plus, in bytes,

* item tables: ``n_items x d x 4`` for the weights, their gradient, two Adam
  moments and the best copy (x5), and per-step tables (SGP4SR: ``T_m``, its
  gradient and the centres, x3 per modality);
* features: ``n_items x d_m x 4`` per modality, twice (numpy and torch copies);
* graphs (SGP4SR): ``n_items x (knn_k + 50) x 16`` per graph (CSR + torch COO);
* evaluation: ``eval_batch_size x n_items x 4`` scores, four times (scores,
  seen-item mask, the sort's copy, float32 up-cast);
* activations: ``batch_size x d x layers x 40 x 4`` per branch (attention,
  feed-forward, dropout masks, their gradients), SGP4SR's centres ``x k``;

times ``MEM_SAFETY``, rounded up to 256 MB.

Runtime (minutes): ``epochs x train_targets x seconds-per-target`` scaled by
``d / 64`` and ``max_len / 50``, times ``RUNTIME_SAFETY``, divided by
``GPU_SPEEDUP`` when the job runs on a GPU, plus ``RUNTIME_FLOOR_MIN``, capped
at ``RUNTIME_CAP_MIN``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

#: peak RSS of a finished demo run (d = 64, 710 items) is 820-1,040 MB (Snakemake's records, logs/benchmarks/train/demo/)
BASE_MB = 1000
MEM_SAFETY = 2.0
#: CPU seconds per training target on one thread at d = 64, max_len = 50. Measured on MovieLens-100k
#: (session 3, config/ml100k.yaml): SASRec ~10 s per epoch, SGP4SR (k = 20) ~180 s per epoch for ~97k targets.
#: The others are SASRec's figure times a factor for their extra work (not measured one by one).
SECONDS_PER_TARGET = {"sasrec": 1.0e-4, "gru4rec": 1.0e-4, "bert4rec": 1.5e-4, "fdsa": 2.0e-4, "sasrecf": 2.0e-4,
                      "unisrec": 3.0e-4, "mmmlp": 3.0e-4, "missrec": 3.0e-4, "hm4sr": 3.0e-4, "iisan": 3.0e-4,
                      "sgp4sr": 2.0e-3}
RUNTIME_SAFETY = 3.0
GPU_SPEEDUP = 10.0
RUNTIME_FLOOR_MIN = 10
RUNTIME_CAP_MIN = 3 * 24 * 60


@dataclass(frozen=True)
class Estimate:
    mem_mb: int
    runtime_min: int


#: what a dry run shows for a job whose inputs do not exist yet (Snakemake sizes the real job once they do)
UNSIZED = Estimate(mem_mb=4000, runtime_min=24 * 60)


def estimate_training(model: str, *, n_items: int, train_targets: int, feature_dims: Sequence[int] = (),
                      hidden_size: int = 64, layers: int = 2, centres: int = 0, knn_k: int = 10, epochs: int = 30,
                      batch_size: int = 256, eval_batch_size: int = 512, max_len: int = 50,
                      gpu: bool = False) -> Estimate:
    """Memory (MB) and wall time (minutes) of one training job; see the module docstring for the model."""
    d, n = int(hidden_size), int(n_items)
    branches = 1 + (len(feature_dims) if model == "sgp4sr" else 0)
    tables = n * d * 4 * (5 + (3 * (branches - 1)))
    features = sum(n * int(dm) * 4 * 2 for dm in feature_dims)
    graphs = (branches - 1 + 1) * n * (int(knn_k) + 50) * 16 if model == "sgp4sr" else 0
    evaluation = int(eval_batch_size) * n * 4 * 4
    per_centre = max(1, int(centres)) if model == "sgp4sr" else 1
    activations = int(batch_size) * d * max(1, int(layers)) * 40 * 4 * branches * per_centre
    total_mb = BASE_MB + MEM_SAFETY * (tables + features + graphs + evaluation + activations) / 2**20
    mem_mb = int(math.ceil(total_mb / 256.0) * 256)

    per_target = SECONDS_PER_TARGET.get(model, max(SECONDS_PER_TARGET.values()))
    seconds = int(epochs) * int(train_targets) * per_target * (d / 64.0) * (int(max_len) / 50.0) * RUNTIME_SAFETY
    if gpu:
        seconds /= GPU_SPEEDUP
    runtime = min(RUNTIME_CAP_MIN, RUNTIME_FLOOR_MIN + int(math.ceil(seconds / 60.0)))
    return Estimate(mem_mb, runtime)


def count_rows(path: str | Path) -> int:
    """Rows of a parquet file (from its footer) or data lines of a text file (header excluded)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with open(path, "rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(0, lines - 1)


def feature_dims(paths: Sequence[str | Path]) -> list[int]:
    """Column counts of ``.npy`` matrices, read from their headers."""
    import numpy as np

    shapes = [np.load(path, mmap_mode="r").shape for path in paths]  # a memory map reads the header only
    return [int(shape[1]) if len(shape) == 2 else 1 for shape in shapes]


def estimate_from_files(model: str, items_file: str | Path, train_file: str | Path,
                        feature_files: Sequence[str | Path], model_params: Mapping[str, Any],
                        training: Mapping[str, Any], graphs: Mapping[str, Any], gpu: bool) -> Estimate:
    """:func:`estimate_training` with sizes read from a run's input files (cheap: headers and line counts)."""
    return estimate_training(
        model, n_items=count_rows(items_file) + 1, train_targets=count_rows(train_file),
        feature_dims=feature_dims(feature_files), hidden_size=int(model_params.get("hidden_size", 64)),
        layers=int(model_params.get("layers", 2)), centres=int(graphs.get("centres", 0)),
        knn_k=int(graphs.get("knn_k", 10)), epochs=int(training.get("epochs", 30)),
        batch_size=int(training.get("batch_size", 256)), eval_batch_size=int(training.get("eval_batch_size", 512)),
        max_len=int(training.get("max_len", 50)), gpu=gpu)
