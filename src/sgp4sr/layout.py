"""The file layout of ``results/``: the one place that spells a path or a file name.

Every stage's rules (``workflow/rules/*.smk`` through the ``*Rules`` helper
classes), the engine that reads a run's inputs and the report that reads its
outputs build their paths here, so a change to the layout is one edit. The
templates hold Snakemake wildcards (``{dataset}``, ``{model}``, ...); the
functions fill them. docs/architecture.md describes what each file holds.

Names inside a folder are spelled by the ``*_name`` functions, so the engine,
which gets folders on its command line, builds the same names as the rules.
"""

from __future__ import annotations

from typing import Any, Mapping

RESULTS = "results"

#: per-dataset folders
DATA_DIR = RESULTS + "/{dataset}/data"
FEATURES_DIR = RESULTS + "/{dataset}/features"
GRAPHS_DIR = RESULTS + "/{dataset}/graphs"
#: one training run: metrics.json, ranks.parquet, model.pt (and CHECKPOINT while it runs)
RUN_DIR = RESULTS + "/{dataset}/runs/{model}/{variant}/seed{seed}"
#: the epoch checkpoint of a run or pre-training in progress, in its output folder
CHECKPOINT = "checkpoint.pt"
#: cross-domain pre-training of ``model`` for target ``dataset``: model.pt, metrics.json
PRETRAIN_DIR = RESULTS + "/pretrain/{model}/{dataset}"
REPORT_DIR = RESULTS + "/report"

#: the split the data stage writes into DATA_DIR, and its statistics
SPLIT_FILES = ("items.parquet", "users.parquet", "train.inter", "valid.inter", "test.inter")
ITEMS_FILE = "items.parquet"
STATS_FILE = "stats.json"

#: the feature set of clean features, and the virtual modality of the ``wo_mul`` ablation
#: (every modality's rows normalised and concatenated, built by the graph stage)
CLEAN = "clean"
FUSED = "fused"
#: ``<modality>@noise<ratio>``: the feature set in which a ratio of one modality's rows is noise
NOISE_MARK = "@noise"

#: graph-stage names inside GRAPHS_DIR (the co-occurrence graph) and GRAPHS_DIR/<fset>/ (the rest)
COOCCURRENCE = "cooccurrence.npz"
GRAPH_SUFFIX = "H{H}_m{mu_m}_o{mu_o}"
MODAL_GRAPH_STEM = "{modality}_" + GRAPH_SUFFIX
CENTRES = "{modality}_centres_k{k}_s{seed}.npz"
GRAPH_SUMMARY = "summary_" + GRAPH_SUFFIX + "_k{k}.json"

#: IISAN's cache of frozen-encoder hidden states, in FEATURES_DIR
IISAN_CACHE = "iisan_hidden.npz"


def format_number(value: float) -> str:
    """How numbers appear in file names and variants (``0.3``, ``2.5``, ``10``): ``%g``."""
    return f"{float(value):g}"


# -- folders -------------------------------------------------------------------------------------------
def data_dir(dataset: str) -> str:
    return DATA_DIR.format(dataset=dataset)


def split_files(dataset: str) -> dict[str, str]:
    """File name -> path of the dataset's split."""
    return {name: f"{data_dir(dataset)}/{name}" for name in SPLIT_FILES}


def stats_file(dataset: str) -> str:
    return f"{data_dir(dataset)}/{STATS_FILE}"


def features_dir(dataset: str) -> str:
    return FEATURES_DIR.format(dataset=dataset)


def graphs_dir(dataset: str) -> str:
    return GRAPHS_DIR.format(dataset=dataset)


def run_dir(dataset: str, model: str, variant: str, seed: int) -> str:
    return RUN_DIR.format(dataset=dataset, model=model, variant=variant, seed=int(seed))


def pretrain_dir(model: str, dataset: str) -> str:
    return PRETRAIN_DIR.format(model=model, dataset=dataset)


def pretrained_file(model: str, dataset: str) -> str:
    """Weights of ``model`` pre-trained on the sources of target ``dataset``."""
    return f"{pretrain_dir(model, dataset)}/model.pt"


def iisan_cache_file(dataset: str) -> str:
    return f"{features_dir(dataset)}/{IISAN_CACHE}"


def download_dir(resources: str, dataset: str) -> str:
    return f"{resources}/downloads/{dataset}"


def images_dir(resources: str, dataset: str) -> str:
    """The image cache of a dataset (filled by its ``image`` features job)."""
    return f"{resources}/images/{dataset}"


# -- feature sets ----------------------------------------------------------------------------------------
def noisy_fset(modality: str, ratio: float) -> str:
    """The feature set in which ``modality`` has a ``ratio`` of its rows replaced (``image@noise0.3``)."""
    return f"{modality}{NOISE_MARK}{format_number(ratio)}"


def noise_of(fset: str) -> tuple[str, float] | None:
    """``(modality, ratio)`` of a noisy feature set (``image@noise0.3`` -> ``("image", 0.3)``), None for clean."""
    if fset == CLEAN:
        return None
    modality, sep, ratio = fset.partition(NOISE_MARK)
    if not sep:
        raise ValueError(f"feature set {fset!r} is neither {CLEAN!r} nor '<modality>{NOISE_MARK}<ratio>'")
    return modality, float(ratio)


def noisy_modality(fset: str) -> str | None:
    """The modality a feature set perturbs (``image`` for ``image@noise0.3``), None for ``clean``."""
    return None if fset == CLEAN else fset.split(NOISE_MARK, 1)[0]


def feature_name(modality: str, fset: str = CLEAN) -> str:
    """``<modality>.npy``, or ``<modality>@noise<r>.npy`` when ``fset`` perturbs this modality."""
    return f"{fset if noisy_modality(fset) == modality else modality}.npy"


def feature_file(dataset: str, modality: str, fset: str = CLEAN) -> str:
    return f"{features_dir(dataset)}/{feature_name(modality, fset)}"


# -- graph files -------------------------------------------------------------------------------------------
def _graph_numbers(settings: Mapping[str, Any]) -> dict[str, str]:
    return {"H": str(int(settings["knn_k"])), "mu_m": format_number(settings["mu_m"]),
            "mu_o": format_number(settings["mu_o"])}


def graph_suffix(settings: Mapping[str, Any]) -> str:
    """``H<knn_k>_m<mu_m>_o<mu_o>``: the graph settings as file names spell them."""
    return GRAPH_SUFFIX.format(**_graph_numbers(settings))


def modal_graph_name(modality: str, settings: Mapping[str, Any], suffix: str = ".npz") -> str:
    """``<m>_H<knn_k>_m<mu_m>_o<mu_o>.npz`` (``suffix=".json"``: its build statistics)."""
    return MODAL_GRAPH_STEM.format(modality=modality, **_graph_numbers(settings)) + suffix


def centres_name(modality: str, k: int, seed: int) -> str:
    return CENTRES.format(modality=modality, k=int(k), seed=int(seed))


def graph_summary_name(settings: Mapping[str, Any]) -> str:
    return GRAPH_SUMMARY.format(k=int(settings["centres"]), **_graph_numbers(settings))


def cooccurrence_file(dataset: str) -> str:
    return f"{graphs_dir(dataset)}/{COOCCURRENCE}"


def fset_graphs_dir(dataset: str, fset: str = CLEAN) -> str:
    return f"{graphs_dir(dataset)}/{fset}"
