"""Models by name. Modules are imported lazily so one broken model cannot break the others."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
from pathlib import Path
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

def registered_class(tree: ast.Module, name: str) -> ast.ClassDef | None:
    """The class of a parsed model module decorated ``@register("<name>")``, or None."""
    def registers(deco: ast.expr) -> bool:  # @register("<name>") or @registry.register("<name>")
        called = getattr(deco, "func", None)
        return (isinstance(deco, ast.Call) and getattr(called, "id", getattr(called, "attr", None)) == "register"
                and bool(deco.args) and isinstance(deco.args[0], ast.Constant) and deco.args[0].value == name)

    return next((node for node in tree.body if isinstance(node, ast.ClassDef)
                 and any(registers(d) for d in node.decorator_list)), None)


@functools.lru_cache(maxsize=None)
def module_tree(name: str) -> tuple[ast.Module, str]:
    """Model ``name``'s module parsed (not imported: no torch) and its file, read once per process."""
    spec = importlib.util.find_spec(_MODULES[name])
    if spec is None or spec.origin is None:
        raise KeyError(f"model '{name}': module {_MODULES[name]} is not installed")
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8")), spec.origin


@functools.lru_cache(maxsize=None)
def _static_requires(name: str) -> tuple[str, ...]:
    """The ``requires`` class attribute of model ``name``, read from its module's source (no import).

    The class is the one decorated ``@register(name)``; without its own ``requires`` it has the base's ``()``.
    """
    tree, origin = module_tree(name)
    cls = registered_class(tree, name)
    if cls is None:
        raise KeyError(f"model '{name}': no class decorated @register({name!r}) in {origin}")
    for stmt in cls.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(
            stmt, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "requires" for t in targets) and stmt.value is not None:
            return tuple(ast.literal_eval(stmt.value))
    return ()


def __getattr__(attr: str) -> Any:
    if attr == "REQUIRES":
        #: model -> what it reads beyond the sequences (its class's ``requires``), read from the sources so the
        #: workflow lists a run's inputs without importing torch; the one model table is ``_MODULES``
        return {name: _static_requires(name) for name in _MODULES}
    raise AttributeError(f"module 'sgp4sr.models.registry' has no attribute {attr!r}")


_REGISTRY: dict[str, type[SequentialRecommender]] = {}


def model_requires(name: str) -> tuple[str, ...]:
    """Static ``requires`` of a model by name (no import of the model module)."""
    if name not in _MODULES:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(sorted(_MODULES))}")
    return _static_requires(name)


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
