"""One training run end to end: split + context -> model -> fit -> test -> run folder.

With ``init`` (``--init``), the model starts from a cross-domain pre-training
checkpoint (:func:`sgp4sr.engine.pretrain.load_pretrained`) instead of its
fresh initialisation, except for the ID-sized parameters.

The run folder receives ``checkpoint.pt`` after every epoch while the run is in
progress; ``model.pt``, ``ranks.parquet`` and finally ``metrics.json`` appear
only when it finishes (metrics.json last: its presence means the run is
complete), and the checkpoint is then deleted.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import yaml

from sgp4sr import layout
from sgp4sr.config import config_seed
from sgp4sr.engine.checkpoint import Fingerprint, input_digests, load_checkpoint
from sgp4sr.engine.context import context_files, discover_modalities, load_context
from sgp4sr.engine.device import resolve_device
from sgp4sr.engine.evaluate import eval_inputs, metrics_from_ranks, rank_users
from sgp4sr.engine.pretrain import load_pretrained
from sgp4sr.engine.sequences import training_examples
from sgp4sr.engine.settings import TrainConfig
from sgp4sr.engine.trainer import fit, peak_rss_mb
from sgp4sr.io import atomic_path, seed_everything, write_json, write_parquet
from sgp4sr.models.registry import get_model_class, instantiate
from sgp4sr.variants import parse_variant

log = logging.getLogger(__name__)

PARAM_KEYS = ("training", "model", "graphs", "modalities", "centres_seed", "dataset", "finetune")


@dataclass
class RunSpec:
    """Everything one run depends on. ``params`` mirrors the rule's JSON (see :func:`read_params`)."""

    data: Path
    out: Path
    model: str
    variant: str = "default"
    seed: int = 1
    training: dict[str, Any] = field(default_factory=dict)
    model_params: dict[str, Any] = field(default_factory=dict)
    features: Path | None = None
    graphs: Path | None = None
    modalities: list[str] | None = None
    graph_settings: dict[str, Any] | None = None
    #: the seed of the centres' k-means (the config's ``seed``; the schema's default when not given)
    centres_seed: int = field(default_factory=lambda: config_seed({}))
    threads: int = 1
    dataset: str | None = None
    #: a pre-training checkpoint to start from, and whether its encoder stays frozen (``finetune`` params)
    init: Path | None = None
    freeze_encoder: bool = True


def read_params(text: str | None, keys: Sequence[str] = PARAM_KEYS) -> dict[str, Any]:
    """``--params``: a JSON string, or a path to a JSON/YAML file, with keys from ``keys``."""
    if not text:
        return {}
    path = Path(text)
    if not text.lstrip().startswith("{") and path.exists():
        params = yaml.safe_load(path.read_text()) or {}
        where = str(path)
    else:
        try:
            params = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--params is neither an existing file nor valid JSON: {exc}") from None
        where = "--params"
    if not isinstance(params, dict):
        raise ValueError(f"{where}: expected a mapping with keys {', '.join(keys)}")
    unknown = sorted(set(params) - set(keys))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed: {', '.join(keys)}")
    return params


def build_model(spec: RunSpec, ctx: Any) -> torch.nn.Module:
    """Construct the registered model; SGP4SR also gets the variant's ablations."""
    cls = get_model_class(spec.model)
    ablations = parse_variant(spec.variant).ablations
    kwargs = dict(spec.model_params)
    if spec.model == "sgp4sr":
        kwargs["ablations"] = ablations
    elif ablations:
        raise ValueError(f"variant '{spec.variant}': ablations {list(ablations)} apply to sgp4sr only, not {spec.model}")
    return instantiate(cls, ctx, kwargs)


@dataclass
class Prepared:
    """A run's model and data, ready to fit or evaluate."""

    cfg: TrainConfig
    device: torch.device
    split: Any
    model: torch.nn.Module
    resolved: dict[str, Any]

    @property
    def fingerprint(self) -> Fingerprint:
        """The effective settings (``resolved`` without the input paths) and the inputs' content hashes."""
        settings = {k: v for k, v in self.resolved.items() if k not in ("inputs", "input_digests")}
        return Fingerprint(settings, self.resolved.get("input_digests", {}))

    def ranks(self, which: str) -> np.ndarray:
        """Ranks of every user's validation (``valid``) or test (``test``) item."""
        split, cfg = self.split, self.cfg
        inputs = eval_inputs(split.train_seqs, split.valid_items, which)
        times = None if split.train_times is None else eval_inputs(split.train_times, split.valid_times, which)
        targets = split.valid_items if which == "valid" else split.test_items
        return rank_users(self.model, inputs, targets, cfg.max_len, cfg.eval_batch_size, self.device,
                          cfg.remove_seen, cfg.eval_item_chunk, autocast=self.device.type == "cuda", times=times)


def prepare(spec: RunSpec) -> Prepared:
    """Settings, split, context and the freshly initialised model (seeded by the run's seed)."""
    from sgp4sr.data.load import load_split, split_files  # the data stage's reader

    torch.set_num_threads(max(1, int(spec.threads)))
    variant = parse_variant(spec.variant)
    spec = replace(spec, model_params={**spec.model_params, **variant.model_overrides()})
    cfg = TrainConfig.from_dict({**spec.training, **variant.training_overrides()})
    device = resolve_device(cfg.device)
    split = load_split(spec.data)
    cls = get_model_class(spec.model)
    modalities = spec.modalities if spec.modalities is not None else discover_modalities(spec.features)
    graph_settings = variant.graph_settings(spec.graph_settings) if spec.graph_settings is not None else None
    files = context_files(cls.requires, modalities, spec.features, spec.graphs, variant.fset, graph_settings,
                          spec.centres_seed, variant.ablations, data_dir=spec.data)
    ctx = load_context(files, split.n_items, cfg.max_len, extra={"dataset": spec.dataset or Path(spec.data).name,
                                                                  "seed": spec.seed})
    seed_everything(spec.seed)
    model = build_model(spec, ctx)
    pretrained = None if spec.init is None else load_pretrained(model, spec.init, spec.freeze_encoder)
    model = model.to(device)
    resolved = {
        "model": spec.model, "variant": spec.variant, "seed": spec.seed, "dataset": spec.dataset,
        "training": cfg.to_dict(), "model_params": spec.model_params, "modalities": modalities,
        "graph_settings": graph_settings, "centres_seed": spec.centres_seed, "fset": variant.fset,
        "ablations": list(variant.ablations),
        "inputs": {"data": str(spec.data), **{k: str(v) for k, v in _named_files(files).items()}},
    }
    if pretrained is not None:  # only then, so runs without pre-training keep their settings fingerprint
        resolved["pretrained"] = {k: v for k, v in pretrained.items() if k != "path"}
        resolved["inputs"]["init"] = str(spec.init)
    read = {**split_files(spec.data), **_named_files(files), **{f"fused/{p.name}": p for p in files.fused_features}}
    if files.items is not None:
        read[f"data/{files.items.name}"] = files.items
    digests = input_digests(read)  # a file replaced at the same path is another run
    if pretrained is not None:
        digests["init"] = pretrained["sha256"]  # load_pretrained hashed the bytes it loaded
    resolved["input_digests"] = dict(sorted(digests.items()))
    return Prepared(cfg, device, split, model, resolved)


def evaluate_checkpoint(spec: RunSpec) -> dict[str, Any]:
    """Valid and test metrics of the best weights so far of an unfinished run (its ``checkpoint.pt``).

    For watching a long run: nothing in the run folder changes, so the run can keep going or resume later.
    """
    prep = prepare(spec)
    state = load_checkpoint(Path(spec.out) / layout.CHECKPOINT, prep.fingerprint)
    if state is None:
        raise FileNotFoundError(f"{spec.out}/checkpoint.pt is missing, unreadable or of another run "
                                "(see the warning)")
    try:
        progress, best = state["progress"], state["progress"]["extra"]
        prep.model.load_state_dict(best["best_state"])
    except (RuntimeError, KeyError) as exc:
        raise ValueError(f"{spec.out}/checkpoint.pt does not fit this run's model: {exc}") from None
    topk, history = prep.cfg.topk, progress["history"]
    # the best epoch's validation metrics were computed with these very weights: no need to rank again
    best_valid = next(h["valid"] for h in history if h["epoch"] == best["best_epoch"])
    return {"epochs_done": state["epoch"], "best_epoch": best["best_epoch"],
            "epochs_without_improvement": best["bad"], "stopped_early": bool(progress["stop"]),
            "valid": best_valid, "test": metrics_from_ranks(prep.ranks("test"), topk),
            "seconds_per_epoch": float(np.mean([h["train_seconds"] for h in history])),
            "eval_seconds": float(np.mean([h["eval_seconds"] for h in history])),
            "curve": [{"epoch": h["epoch"], "loss": h["loss"], **h["valid"]} for h in history]}


def run_training(spec: RunSpec, on_epoch_end: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train, validate, test; write the run folder; return the metrics dict."""
    started = time.perf_counter()
    prep = prepare(spec)
    cfg, device, split, model, resolved = prep.cfg, prep.device, prep.split, prep.model, prep.resolved
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    examples = training_examples(split.train_seqs, cfg.max_len, cfg.train_form, split.n_items, split.train_times)
    log.info("%s on %s: %d users, %d items, %d training rows (%s form, %d examples), %d parameters, device %s",
             spec.model, spec.data, split.n_users, split.n_items - 1, len(examples), cfg.train_form,
             examples.n_targets, n_params, device)
    ranks = prep.ranks

    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = fit(model, examples, lambda: metrics_from_ranks(ranks("valid"), cfg.topk), cfg, device, spec.seed,
                 checkpoint=out / layout.CHECKPOINT, fingerprint=prep.fingerprint,
                 on_epoch_end=on_epoch_end)
    t0 = time.perf_counter()
    valid_ranks, test_ranks = ranks("valid"), ranks("test")
    test_seconds = time.perf_counter() - t0
    test_terms, term_ranks = {}, {}
    for term in model.score_terms():  # which term of a summed score carries the ranking
        with model.scoring_only(term):
            term_ranks[f"test_rank_{term}"] = ranks("test").astype(np.int32)
        test_terms[term] = metrics_from_ranks(term_ranks[f"test_rank_{term}"], cfg.topk)

    history = result.history
    train_s = [h["train_seconds"] for h in history]
    metrics = {
        "model": spec.model, "variant": spec.variant, "seed": spec.seed, "dataset": spec.dataset,
        "best_epoch": result.best_epoch, "epochs_run": len(history), "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from,
        "valid": metrics_from_ranks(valid_ranks, cfg.topk), "test": metrics_from_ranks(test_ranks, cfg.topk),
        "test_by_score_term": test_terms,
        "curve": history,
        "seconds_per_epoch": float(np.mean(train_s)) if train_s else None,
        "eval_seconds": float(np.mean([h["eval_seconds"] for h in history])) if history else None,
        "test_eval_seconds": test_seconds,
        "examples_per_second": float(np.mean([h["examples_per_second"] for h in history])) if history else None,
        "total_seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
        "peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "n_parameters": n_params, "n_users": split.n_users, "n_items": split.n_items - 1,
        "n_train_rows": len(examples), "n_train_examples": examples.n_targets,
        "device": str(device), "threads": int(spec.threads), "torch": torch.__version__,
        "python": platform.python_version(), "config": resolved,
    }
    with atomic_path(out / "model.pt", suffix=".tmp") as tmp:
        torch.save({"model": spec.model, "model_params": spec.model_params, "variant": spec.variant,
                    "n_items": split.n_items, "max_len": cfg.max_len,
                    "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, tmp)
    write_parquet(out / "ranks.parquet", pd.DataFrame({
        "user_idx": np.arange(split.n_users, dtype=np.int32),
        "valid_rank": valid_ranks.astype(np.int32), "test_rank": test_ranks.astype(np.int32), **term_ranks}))
    write_json(out / "metrics.json", metrics)
    (out / layout.CHECKPOINT).unlink(missing_ok=True)
    log.info("test: %s", ", ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items()))
    return metrics


def _named_files(files: Any) -> dict[str, Path]:
    named: dict[str, Path] = {f"features/{m}": p for m, p in files.features.items()}
    named.update({f"modal_graph/{m}": p for m, p in files.modal_graphs.items()})
    named.update({f"centres/{m}": p for m, p in files.centres.items()})
    if files.cooccurrence is not None:
        named["cooccurrence"] = files.cooccurrence
    return named


def spec_from_params(params: Mapping[str, Any], **kwargs: Any) -> RunSpec:
    """A :class:`RunSpec` from the ``--params`` mapping plus the explicit CLI arguments."""
    finetune = dict(params.get("finetune") or {})
    unknown = sorted(set(finetune) - {"freeze_encoder"})
    if unknown:
        raise ValueError(f"--params finetune: unknown keys {unknown}; allowed: freeze_encoder")
    return RunSpec(training=dict(params.get("training") or {}), model_params=dict(params.get("model") or {}),
                   graph_settings=params.get("graphs"), modalities=params.get("modalities"),
                   centres_seed=int(params.get("centres_seed", config_seed({}))), dataset=params.get("dataset"),
                   freeze_encoder=bool(finetune.get("freeze_encoder", True)), **kwargs)
