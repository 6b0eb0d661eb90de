"""Run variants: one path component that says how a run differs from the defaults.

``results/<ds>/runs/<model>/<variant>/seed<seed>/`` must be guessable from the
experiment, and a sweep point must be its own cached Snakemake job. A variant
is ``default`` or tokens joined by ``+``, each either an SGP4SR ablation name
or ``key~value`` (Snakemake Paramspace style)::

    default
    wo_coo
    k~20
    fset~image@noise0.3
    lr~0.0005+H~10+mu_o~0.3+mu_m~2.5+k~50
    beta~1+input_ln~true            (SGP4SR's own hyper-parameters, the paper's Eq. 17 and Eq. 6)

Tokens are kept in a canonical order (:func:`format_variant`) so two spellings
of the same run cannot become two jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from sgp4sr.layout import CLEAN


def _flag(text: str) -> bool:
    """A variant's boolean value: ``true``/``false`` (also ``1``/``0``)."""
    value = {"true": True, "1": True, "false": False, "0": False}.get(str(text).lower())
    if value is None:
        raise ValueError(text)
    return value


_flag.__name__ = "bool (true/false)"

#: SGP4SR's ablations (spec §4); models/sgp4sr.py implements them
ABLATIONS = ("wo_coo", "wo_cgc", "wo_cip", "wo_mul", "wo_c2c")
#: inputs an ablation leaves unread: w/o CGC has no modal graphs (it maps the features), w/o CIP no
#: interest centres, w/o C2C neither
ABLATION_DROPS = {"wo_cgc": {"modal_graphs"}, "wo_cip": {"centres"}, "wo_c2c": {"modal_graphs", "centres"}}
#: graph settings (dataset ``graphs`` keys) each input role is built from, in file names
GRAPH_KEYS_OF = {"modal_graphs": ("knn_k", "mu_m", "mu_o"), "centres": ("centres",)}

# key -> (where it applies, type). "training" keys override the engine config,
# "graphs" keys the dataset's graph settings, "model" keys the model's hyper-parameters
# (SGP4SR's switches that the paper's text describes), "fset" selects the feature set.
KEYS: dict[str, tuple[str, type]] = {
    "lr": ("training", float),
    "wd": ("training", float),
    "H": ("graphs", int),
    "mu_m": ("graphs", float),
    "mu_o": ("graphs", float),
    "k": ("graphs", int),
    "beta": ("model", float),
    "alpha": ("model", float),
    "rho_v": ("model", float),
    "input_ln": ("model", _flag),
    "fset": ("features", str),
}
_GRAPH_KEY = {"H": "knn_k", "mu_m": "mu_m", "mu_o": "mu_o", "k": "centres"}
_TRAINING_KEY = {"lr": "lr", "wd": "weight_decay"}
_MODEL_KEY = {"beta": "beta", "alpha": "alpha", "rho_v": "rho_v", "input_ln": "input_layernorm"}


@dataclass(frozen=True)
class Variant:
    ablations: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def fset(self) -> str:
        return self.params.get("fset", CLEAN)

    def requires(self, base: Iterable[str]) -> tuple[str, ...]:
        """A model's ``requires`` roles less those its ablations do not read (in ``base`` order)."""
        dropped = set().union(*(ABLATION_DROPS.get(a, set()) for a in self.ablations))
        return tuple(role for role in base if role not in dropped)

    def run_graph_settings(self, base: dict, requires: Iterable[str]) -> dict:
        """The graph settings a run reads, after this variant's overrides: the modal-graph keys when it
        reads modal graphs, ``centres`` when it reads centres (k = 0: none), nothing else."""
        settings = self.graph_settings(base)
        keys = [key for role in self.requires(requires) for key in GRAPH_KEYS_OF.get(role, ())]
        return {key: settings[key] for key in keys}

    def graph_settings(self, base: dict) -> dict:
        """The dataset's ``graphs`` config with this variant's overrides (``w/o COO`` sets ``mu_o = 0``)."""
        settings = dict(base)
        for key, value in self.params.items():
            if key in _GRAPH_KEY:
                settings[_GRAPH_KEY[key]] = value
        if "wo_coo" in self.ablations:
            settings["mu_o"] = 0.0
        return settings

    def training_overrides(self) -> dict:
        return {_TRAINING_KEY[k]: v for k, v in self.params.items() if k in _TRAINING_KEY}

    def model_overrides(self) -> dict:
        """The model hyper-parameters this variant sets (``beta~1`` -> ``{"beta": 1.0}``)."""
        return {_MODEL_KEY[k]: v for k, v in self.params.items() if k in _MODEL_KEY}


def parse_variant(text: str) -> Variant:
    """Parse a variant string; raise ``ValueError`` naming the bad token."""
    if text == "default":
        return Variant()
    ablations: list[str] = []
    params: dict[str, Any] = {}
    for token in text.split("+"):
        if token in ABLATIONS:
            ablations.append(token)
            continue
        key, sep, value = token.partition("~")
        if not sep or key not in KEYS:
            raise ValueError(
                f"bad variant token '{token}' in '{text}': expected one of {', '.join(ABLATIONS)} "
                f"or key~value with key in {', '.join(KEYS)}"
            )
        try:
            params[key] = KEYS[key][1](value)
        except ValueError:
            raise ValueError(f"bad value in variant token '{token}': not a {KEYS[key][1].__name__}") from None
    return Variant(tuple(sorted(ablations, key=ABLATIONS.index)), params)


def format_variant(ablations: tuple[str, ...] | list[str] = (), **params: Any) -> str:
    """Canonical variant string (ablations first, then keys in :data:`KEYS` order)."""
    tokens = [a for a in ABLATIONS if a in ablations]
    unknown = set(params) - set(KEYS)
    if unknown:
        raise ValueError(f"unknown variant keys {sorted(unknown)}")
    tokens += [f"{k}~{_fmt(params[k])}" for k in KEYS if k in params and params[k] is not None]
    return "+".join(tokens) or "default"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
