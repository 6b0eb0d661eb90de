"""The engine's settings as a typed dataclass built from the validated ``training`` config.

The YAML schema already checks types; this adds the defaults (so ``sgp4sr train``
works with an empty config) and a clear error for keys the engine does not know.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class TrainConfig:
    """One run's engine settings; field names equal the config keys under ``training``."""

    epochs: int = 30
    patience: int = 5
    batch_size: int = 256
    eval_batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_len: int = 50
    valid_metric: str = "recall@5"
    topk: tuple[int, ...] = (5, 10, 20, 50)
    remove_seen: bool = False
    train_form: str = "onepass"
    device: str = "auto"
    eval_item_chunk: int | None = None
    #: group examples of similar length into a batch (after shuffling) so little padding is computed
    length_buckets: bool = True

    def __post_init__(self) -> None:
        if self.train_form not in ("onepass", "prefix"):
            raise ValueError(f"training.train_form must be 'onepass' or 'prefix', got {self.train_form!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"training.device must be auto, cpu or cuda, got {self.device!r}")
        name, _, k = self.valid_metric.partition("@")
        if name not in ("recall", "ndcg") or not k.isdigit():
            raise ValueError(f"training.valid_metric must look like recall@5 or ndcg@10, got {self.valid_metric!r}")
        object.__setattr__(self, "topk", tuple(sorted({int(k) for k in self.topk} | {int(k)})))
        for key in ("epochs", "patience", "batch_size", "eval_batch_size", "max_len"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"training.{key} must be >= 1, got {getattr(self, key)}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "TrainConfig":
        """Build from a ``training`` mapping; unknown keys are an error (a typo would silently do nothing)."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training keys {unknown}; known: {', '.join(sorted(known))}")
        if "topk" in values:
            values["topk"] = tuple(values["topk"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["topk"] = list(self.topk)
        return out

