"""Cross-domain pre-training (MISSRec, UniSRec) and loading its weights for fine-tuning.

Item IDs do not transfer between datasets, so pre-training sees items only
through their features: the source datasets' items are laid side by side in
one joint item table (each source's rows after the previous ones, row 0 the
padding), the model is built without ID embeddings over that table, and the
training prefixes of all sources are shuffled together, so every batch mixes
domains (the originals' in-batch negatives come from several domains). The
model's own ``pretrain_loss`` holds its objectives; this module holds the
data, the loop and the checkpoint.

The checkpoint (``model.pt``) keeps every state entry except those sized by
the item set (each model's ``id_sized_state``); :func:`load_pretrained` puts
it into a model built for the target dataset, checking that every transferred
shape matches, and leaves the ID-sized entries as freshly initialised. While
pre-training runs, ``checkpoint.pt`` beside the outputs lets a killed job
resume after its last epoch.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence, cast

import numpy as np
import torch
from tqdm import tqdm

from sgp4sr import layout
from sgp4sr.config import PRETRAINABLE, config_seed, schema_defaults
from sgp4sr.data.load import split_files
from sgp4sr.engine.checkpoint import Fingerprint, input_digests
from sgp4sr.engine.loop import Progress, run_epochs
from sgp4sr.engine.context import feature_file
from sgp4sr.engine.device import resolve_device
from sgp4sr.engine.sequences import Examples, batch_order, make_batch, prefix_examples
from sgp4sr.engine.trainer import peak_rss_mb
from sgp4sr.io import atomic_path, seed_everything, write_json
from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender
from sgp4sr.models.registry import get_model_class, instantiate

log = logging.getLogger(__name__)

_D = schema_defaults("pretraining")


@dataclass(frozen=True)
class PretrainSettings:
    """The loop's settings: the ``pretraining`` config keys it uses, plus the target's ``max_len``."""

    epochs: int = _D["epochs"]
    batch_size: int = _D["batch_size"]
    lr: float = _D["lr"]
    weight_decay: float = _D["weight_decay"]
    seq_seq_weight: float = _D["seq_seq_weight"]
    item_drop_ratio: float = _D["item_drop_ratio"]
    device: str = _D["device"]
    max_len: int = 50
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(_D["model_overrides"]))

    def __post_init__(self) -> None:
        if not 0 <= self.item_drop_ratio < 1:
            raise ValueError(f"pretraining.item_drop_ratio must be in [0, 1), got {self.item_drop_ratio}")
        for key in ("epochs", "batch_size", "max_len"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"pretraining.{key} must be >= 1, got {getattr(self, key)}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "PretrainSettings":
        """An unknown key is an error naming the known ones (a typo would silently do nothing)."""
        try:
            return cls(**dict(values or {}))
        except TypeError as exc:
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ValueError(f"pre-training settings: {exc}; known keys: {known}") from None


@dataclass(frozen=True)
class Source:
    """One source dataset: its split folder and its features folder."""

    name: str
    data: Path
    features: Path


@dataclass
class JointItems:
    """The sources' items in one table: source ``s``'s item ``i`` is joint item ``offsets[s] + i``."""

    n_items: int
    features: dict[str, np.ndarray]
    train_seqs: list[np.ndarray]
    offsets: dict[str, int]
    summary: list[dict[str, Any]]


def join_sources(sources: Sequence[Source], modalities: Sequence[str]) -> JointItems:
    """Load every source's training sequences and features into one joint item table.

    Only the modalities that every source provides are loaded (the model names
    what it misses); a modality must have the same width in every source.
    """
    from sgp4sr.data.load import load_split  # the data stage's reader

    if not sources:
        raise ValueError("pre-training needs at least one source dataset")
    present = [m for m in modalities if all(feature_file(s.features, m).exists() for s in sources)]
    features: dict[str, list[np.ndarray]] = {m: [] for m in present}
    seqs: list[np.ndarray] = []
    offsets: dict[str, int] = {}
    summary = []
    offset = 0
    for src in sources:
        split = load_split(src.data)
        for m in present:
            path = feature_file(src.features, m)
            array = np.load(path, mmap_mode="r")
            if array.ndim != 2 or array.shape[0] != split.n_items:
                raise ValueError(f"{path}: features of shape {array.shape} do not match the {split.n_items} items "
                                 f"(with padding) of {src.data}")
            if features[m] and features[m][0].shape[1] != array.shape[1]:
                raise ValueError(f"modality '{m}' is {features[m][0].shape[1]}-d in {sources[0].name} but "
                                 f"{array.shape[1]}-d in {src.name}: pre-training sources need the same encoders")
            features[m].append(np.asarray(array[1:], dtype=np.float32))
        offsets[src.name] = offset
        seqs += [np.asarray(s, dtype=np.int64) + offset for s in split.train_seqs]
        summary.append({"name": src.name, "data": str(src.data), "features": str(src.features),
                        "items": split.n_items - 1, "users": split.n_users, "offset": offset})
        offset += split.n_items - 1
    joint = {m: np.concatenate([np.zeros((1, parts[0].shape[1]), np.float32)] + parts) for m, parts in features.items()}
    return JointItems(offset + 1, joint, seqs, offsets, summary)


def source_files(sources: Sequence[Source], modalities: Sequence[str]) -> dict[str, Path]:
    """Every file pre-training reads, by ``<source>/<role>``: each source's split files and feature files."""
    files: dict[str, Path] = {}
    for src in sources:
        files.update({f"{src.name}/{name}": path for name, path in split_files(src.data).items()})
        files.update({f"{src.name}/features/{m}": feature_file(src.features, m) for m in modalities})
    return files


def item_drop(seq: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """The originals' item-drop augmentation on left-padded rows.

    Each real item is dropped with probability ``ratio``; the oldest is always
    kept (so no row becomes empty); the kept items close up towards the newest
    position, in their order.
    """
    real = seq != 0
    keep = real & (torch.rand(seq.shape, generator=generator) >= ratio)
    oldest = real.float().argmax(dim=1)
    keep[torch.arange(len(seq)), oldest] = real[torch.arange(len(seq)), oldest]
    order = torch.argsort(keep.to(torch.int8), dim=1, stable=True)  # dropped first, kept last, order preserved
    return torch.gather(seq * keep, 1, order)


class Pretrainable(Protocol):
    """What a model with a cross-domain pre-training stage provides (MISSRec, UniSRec).

    ``id_sized_state``: state-dict prefixes sized by the item set (not transferred);
    ``finetune_frozen``: prefixes frozen at fine-tuning with ``freeze_encoder``;
    ``start_epoch()`` runs before each pre-training epoch (a no-op unless the model keeps per-epoch state).
    """

    name: ClassVar[str]
    id_sized_state: ClassVar[tuple[str, ...]]
    finetune_frozen: ClassVar[tuple[str, ...]]

    def pretrain_loss(self, batch: Batch, augmented: Batch, seq_seq_weight: float) -> torch.Tensor: ...

    def start_epoch(self) -> None: ...


PRETRAINABLE_MEMBERS = ("id_sized_state", "finetune_frozen", "pretrain_loss", "start_epoch")


def as_pretrainable(cls: type, what: str) -> type[Pretrainable]:
    """``cls`` checked to provide every :class:`Pretrainable` member; else a ValueError naming ``what`` fails."""
    missing = [m for m in PRETRAINABLE_MEMBERS if not hasattr(cls, m)]
    if missing:
        raise ValueError(f"model '{getattr(cls, 'name', cls.__name__)}' {what}; models that can: "
                         f"{', '.join(PRETRAINABLE)} (missing: {', '.join(missing)})")
    return cast("type[Pretrainable]", cls)


def pretrainable_class(model: str) -> type[Pretrainable]:
    return as_pretrainable(get_model_class(model), "has no cross-domain pre-training stage")


def transferable_state(model: Any) -> dict[str, torch.Tensor]:
    """Every state entry except those sized by the item set (``id_sized_state``), on the CPU."""
    skip = tuple(as_pretrainable(type(model), "has no pre-training stage").id_sized_state)
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(skip)}


def pretrain(model_name: str, sources: Sequence[Source], out: str | Path, model_params: Mapping[str, Any] | None = None,
             settings: PretrainSettings | None = None, modalities: Sequence[str] = ("text", "image"),
             seed: int | None = None, threads: int = 1,
             on_epoch_end: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Pre-train ``model_name`` on ``sources``; write ``out``/model.pt and ``out``/metrics.json (loss curve).

    ``seed`` defaults to the config schema's ``seed``.
    """
    seed = config_seed({}) if seed is None else int(seed)
    started = time.perf_counter()
    settings = settings or PretrainSettings()
    torch.set_num_threads(max(1, int(threads)))
    cls = pretrainable_class(model_name)
    device = resolve_device(settings.device)
    joint = join_sources(sources, modalities)
    names = "+".join(s.name for s in sources)
    ctx = ModelContext(n_items=joint.n_items, max_len=settings.max_len, features=joint.features,
                       extra={"dataset": f"the pre-training sources ({names})", "seed": seed})
    params = {**dict(model_params or {}), **settings.model_overrides.get(model_name, {}), "transductive": False}
    seed_everything(seed)
    model = instantiate(cls, ctx, params).to(device)
    examples = prefix_examples(joint.train_seqs, settings.max_len, joint.n_items)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("pre-training %s on %s: %d items, %d training prefixes, %d parameters, device %s",
             model_name, names, joint.n_items - 1, len(examples), n_params, device)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    finger = Fingerprint({"model": model_name, "params": params, "settings": dataclasses.asdict(settings),
                          "sources": joint.summary, "modalities": sorted(joint.features), "seed": seed},
                         input_digests(source_files(sources, sorted(joint.features))))

    def make_optimizer() -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)

    def run_epoch(optimizer: torch.optim.Optimizer, epoch: int, progress: Progress) -> bool:
        t0 = time.perf_counter()
        losses = _epoch(model, optimizer, examples, settings, seed, epoch, device)
        progress.history.append({"epoch": epoch, "loss": float(np.mean(losses)), "first_batch_loss": losses[0],
                                 "last_batch_loss": losses[-1], "batches": len(losses),
                                 "seconds": time.perf_counter() - t0})
        log.info("pre-training epoch %d/%d: loss %.4f (%d batches, %.1fs, rss %.0f MB)", epoch, settings.epochs,
                 progress.history[-1]["loss"], len(losses), progress.history[-1]["seconds"], peak_rss_mb())
        return False

    result = run_epochs(model, make_optimizer, settings.epochs, run_epoch, checkpoint=out / layout.CHECKPOINT,
                        fingerprint=finger, on_epoch_end=on_epoch_end)
    curve = result.progress.history

    weights = transferable_state(model)
    with atomic_path(out / "model.pt", suffix=".tmp") as tmp:
        torch.save({"model": model_name, "model_params": params, "max_len": settings.max_len,
                    "sources": [s["name"] for s in joint.summary], "modalities": sorted(joint.features),
                    "state_dict": weights}, tmp)
    metrics = {"model": model_name, "sources": joint.summary, "n_items": joint.n_items - 1,
               "n_train_rows": len(examples), "n_parameters": n_params, "transferred": sorted(weights),
               "settings": dataclasses.asdict(settings), "model_params": params, "seed": seed,
               "modalities": sorted(joint.features), "curve": curve, "device": str(device),
               "threads": int(threads), "total_seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}
    write_json(out / "metrics.json", metrics)
    (out / layout.CHECKPOINT).unlink(missing_ok=True)
    return metrics


def _epoch(model: Any, optimizer: torch.optim.Optimizer, examples: Examples, settings: PretrainSettings,
           seed: int, epoch: int, device: torch.device) -> list[float]:
    """One shuffled pass (no length buckets: batch mates, the negatives, stay random); the batch losses."""
    model.train()
    model.start_epoch()
    rng = np.random.default_rng([seed, epoch])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    order = batch_order(examples.length, settings.batch_size, rng, buckets=False)
    losses = []
    for idx in tqdm(order, desc=f"pre-training epoch {epoch}", leave=False, disable=None):
        batch = make_batch(examples.seq[idx], examples.target[idx], lengths=examples.length[idx])
        augmented = Batch(seq=item_drop(batch.seq, settings.item_drop_ratio, generator))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model.pretrain_loss(batch.to(device), augmented.to(device), settings.seq_seq_weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pre-training loss became {float(loss)} in epoch {epoch}; "
                                     "lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def load_pretrained(model: SequentialRecommender, path: str | Path, freeze_encoder: bool = True) -> dict[str, Any]:
    """Initialise ``model`` from a pre-training checkpoint; the ID-sized entries keep their fresh values.

    Every transferred entry must exist in ``model`` with the same shape; the
    error names each one that does not. With ``freeze_encoder`` the model's
    ``finetune_frozen`` parameters stop receiving gradients (the originals'
    parameter-efficient fine-tuning). Returns a description for the run's metrics.
    """
    path = Path(path)
    cls = as_pretrainable(type(model), "cannot be initialised from pre-trained weights")
    raw = path.read_bytes()  # read once: hashed for the run's record and loaded
    ckpt = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if ckpt.get("model") != cls.name:
        raise ValueError(f"{path} holds pre-trained '{ckpt.get('model')}' weights, not '{cls.name}'")
    own = model.state_dict()
    given: dict[str, torch.Tensor] = ckpt["state_dict"]
    expected = {k for k in own if not k.startswith(tuple(cls.id_sized_state))}
    problems = [f"parameter '{k}' is missing from the checkpoint" for k in sorted(expected - set(given))]
    problems += [f"the checkpoint's '{k}' does not exist in this model" for k in sorted(set(given) - expected)]
    problems += [f"parameter '{k}' has shape {tuple(given[k].shape)} in the checkpoint but {tuple(own[k].shape)} here"
                 for k in sorted(expected & set(given)) if given[k].shape != own[k].shape]
    if problems:
        raise ValueError(f"{path}: the pre-trained {cls.name} does not fit this model: " + "; ".join(problems)
                         + " (pre-training and fine-tuning need the same hyper-parameters, max_len and feature "
                           "widths)")
    own.update({k: v.to(own[k].dtype) for k, v in given.items()})
    model.load_state_dict(own)
    frozen = []
    if freeze_encoder:
        for name, param in model.named_parameters():
            if name.startswith(tuple(cls.finetune_frozen)):
                param.requires_grad_(False)
                frozen.append(name)
    log.info("initialised %s from %s (pre-trained on %s): %d entries transferred, %d parameters frozen",
             cls.name, path, ", ".join(ckpt.get("sources", [])), len(given), len(frozen))
    return {"path": str(path), "sha256": hashlib.sha256(raw).hexdigest(), "sources": ckpt.get("sources", []),
            "freeze_encoder": freeze_encoder, "frozen": frozen}
