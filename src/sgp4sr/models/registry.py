"""Models by name. Modules are imported lazily so one broken model cannot break the others."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # keep this module free of torch: the Snakefile reads REQUIRES at parse time
    from sgp4sr.models.base import SequentialRecommender

# name -> module that defines it (module must define exactly one registered class)
_MODULES = {
    "sgp4sr": "sgp4sr.models.sgp4sr",
    "sasrec": "sgp4sr.models.sasrec",
    "gru4rec": "sgp4sr.models.gru4rec",
    "bert4rec": "sgp4sr.models.bert4rec",
    "fdsa": "sgp4sr.models.fdsa",
    "sasrecf": "sgp4sr.models.sasrecf",
    "unisrec": "sgp4sr.models.unisrec",
    "mmmlp": "sgp4sr.models.mmmlp",
    "missrec": "sgp4sr.models.missrec",
    "hm4sr": "sgp4sr.models.hm4sr",
    "iisan": "sgp4sr.models.iisan",
}

#: what each model reads beyond the sequences (each class's ``requires``; a test keeps them equal),
#: so the workflow can list a run's input files without importing torch or the model
REQUIRES: dict[str, tuple[str, ...]] = {
    "sgp4sr": ("cooccurrence", "modal_graphs", "centres", "features"),
    "sasrec": (),
    "gru4rec": (),
    "bert4rec": (),
    "fdsa": ("features",),
    "sasrecf": ("features",),
    "unisrec": ("features",),
    "mmmlp": ("features",),
    "missrec": ("features",),
    "hm4sr": ("features", "categories"),  # categories optional: absent in bare benchmark folders
    "iisan": (),  # reads its own cache of hidden states (see models/iisan.py)
}

_REGISTRY: dict[str, type[SequentialRecommender]] = {}


def model_requires(name: str) -> tuple[str, ...]:
    """Static ``requires`` of a model by name (no import of the model module)."""
    if name not in REQUIRES:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(sorted(REQUIRES))}")
    return REQUIRES[name]


def register(name: str):
    """Class decorator: make a model constructible by ``name`` from the config."""

    def wrap(cls: type[SequentialRecommender]) -> type[SequentialRecommender]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_models() -> list[str]:
    """Names whose module exists in this installation."""
    found = []
    for name, module in _MODULES.items():
        if importlib.util.find_spec(module) is not None:
            found.append(name)
    return found


def get_model_class(name: str) -> type[SequentialRecommender]:
    if name not in _MODULES:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(sorted(_MODULES))}")
    if name not in _REGISTRY:
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name == _MODULES[name]:
                raise KeyError(f"model '{name}' is not implemented in this version; available: "
                               f"{', '.join(available_models())}") from None
            raise
    return _REGISTRY[name]


def instantiate(cls: type[SequentialRecommender], ctx: Any, params: Mapping[str, Any]) -> SequentialRecommender:
    """``cls(ctx, **params)``; a wrong hyper-parameter name becomes an error naming the model and the given keys."""
    try:
        return cls(ctx, **params)
    except TypeError as exc:
        raise ValueError(f"model '{cls.name}': bad hyper-parameters {sorted(params)}: {exc}") from None
