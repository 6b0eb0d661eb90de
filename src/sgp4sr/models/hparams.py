"""Plan-time checks of the ``models`` config blocks against each model's constructor.

A model's hyper-parameters are the arguments of its ``__init__`` after
``ctx``. Instantiating the model is the only full check, but that happens in
the training job, after every upstream stage has run; here the model modules
are *parsed* (``ast``, no torch import) so ``snakemake -n`` already reports

* unknown keys, with a did-you-mean;
* values whose type does not fit the annotation (``int``, ``float``, ``bool``,
  ``str``, lists, mappings, ``Optional``; a YAML int is fine for a float, a
  bool is not a number);
* out-of-range values: dropout rates (``dropout``, ``*_dropout``,
  ``*dropout_prob``) in [0, 1), sizes (``hidden_size``, ``*_size``, ``layers``,
  ``heads``, ``max_len``, ...) >= 1, and ``heads`` dividing ``hidden_size``
  once the block is merged over the defaults and the dataset's overrides.

Every problem names its config path, e.g.
``datasets.demo.models.sgp4sr.hiden_size: unknown key (did you mean 'hidden_size'?)``.
"""

from __future__ import annotations

import ast
import difflib
import functools
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from sgp4sr.models.registry import _MODULES, module_tree, registered_class

#: keys the engine sets itself; a config value would be silently replaced
RESERVED = {"sgp4sr": {"ablations": "set by the run's variant (e.g. wo_cip), not in the config"}}

_MISSING = object()  # a parameter without a default, or a default that is not a plain literal
_UNCHECKED = None  # an annotation this module does not understand: any value passes


@dataclass(frozen=True)
class Param:
    name: str
    #: accepted YAML types: a tuple of ``int``/``float``/``bool``/``str``/``list``/``dict``/``type(None)``,
    #: or None when the annotation is not understood (no type check)
    types: tuple[type, ...] | None
    default: Any = _MISSING
    annotation: str = ""


@dataclass(frozen=True)
class Signature:
    model: str
    params: dict[str, Param] = field(default_factory=dict)
    #: ``**kwargs`` in the signature: any key is accepted
    open: bool = False


# -- reading the signatures ---------------------------------------------------------------------

_SIMPLE = {"int": (int,), "float": (float, int), "bool": (bool,), "str": (str,), "None": (type(None),),
           "Any": None, "object": None}
_LISTS = {"list", "tuple", "Sequence", "Iterable", "Collection", "MutableSequence", "List", "Tuple"}
_DICTS = {"dict", "Mapping", "MutableMapping", "Dict"}


def _name(node: ast.AST) -> str:
    """``Sequence`` for ``Sequence``, ``typing.Sequence`` and ``t.Sequence``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _types(node: ast.AST | None) -> tuple[type, ...] | None:
    """The YAML types an annotation accepts; None when not understood."""
    if node is None:
        return None
    if isinstance(node, ast.Constant):
        if node.value is None:
            return (type(None),)
        if isinstance(node.value, str):  # a string annotation ("int | None")
            try:
                return _types(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return None
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _types(node.left), _types(node.right)
        return None if left is None or right is None else tuple(dict.fromkeys(left + right))
    if isinstance(node, ast.Subscript):
        outer = _name(node.value)
        if outer == "Optional":
            inner = _types(node.slice)
            return None if inner is None else tuple(dict.fromkeys(inner + (type(None),)))
        if outer == "Union":
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            found = [_types(p) for p in parts]
            return None if any(f is None for f in found) else tuple(dict.fromkeys(t for f in found for t in f))
        node = node.value  # list[str] -> list: the items are not checked
    name = _name(node)
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name in _LISTS:
        return (list,)
    if name in _DICTS:
        return (dict,)
    return None


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _value(node: ast.AST, constants: Mapping[str, Any]) -> Any:
    """A default's value when it is a literal, simple arithmetic on literals or a module constant."""
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _value(node.left, constants), _value(node.right, constants)
        if left is _MISSING or right is _MISSING:
            return _MISSING
        try:
            return _OPS[type(node.op)](left, right)
        except Exception:  # noqa: BLE001 - a default we cannot compute is simply unknown
            return _MISSING
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        operand = _value(node.operand, constants)
        return _MISSING if operand is _MISSING else _OPS[type(node.op)](operand)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _MISSING


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    constants: dict[str, Any] = {}
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(
            stmt, ast.AnnAssign) and stmt.value is not None else []
        for target in targets:
            if isinstance(target, ast.Name):
                value = _value(stmt.value, constants)  # type: ignore[union-attr]
                if value is not _MISSING:
                    constants[target.id] = value
    return constants


def parse_signature(source: str, model: str) -> Signature | None:
    """The hyper-parameters of the class registered as ``model`` in ``source``; None if not found."""
    return _signature_of(ast.parse(source), model)


def _signature_of(tree: ast.Module, model: str) -> Signature | None:
    cls = registered_class(tree, model)
    init = None if cls is None else next(
        (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return None
    constants = _module_constants(tree)
    args = init.args
    positional = args.posonlyargs + args.args
    defaults: list[Any] = [_MISSING] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    params: dict[str, Param] = {}
    for i, (arg, default) in enumerate(pairs):
        if i < 2 and arg.arg in ("self", "ctx"):
            continue
        value = _MISSING if default is _MISSING or default is None else _value(default, constants)
        params[arg.arg] = Param(arg.arg, _types(arg.annotation), value,
                                ast.unparse(arg.annotation) if arg.annotation is not None else "")
    return Signature(model, params, open=args.kwarg is not None)


@functools.lru_cache(maxsize=None)
def model_signature(model: str) -> Signature | None:
    """The parsed signature of a registered model; None for an unknown model or an unreadable module."""
    if model not in _MODULES:
        return None
    try:
        return _signature_of(module_tree(model)[0], model)
    except (KeyError, OSError, SyntaxError):
        return None


# -- checking values ----------------------------------------------------------------------------

_DROPOUT = re.compile(r"^(.*_)?dropout$|dropout_prob$")
_POSITIVE = re.compile(r"^(hidden_size|layers|heads|max_len|.*_size|.*_layers|.*_heads|.*_len|.*_chunk)$")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return any(isinstance(value, t) for t in types if t is not bool)


def _expected(param: Param) -> str:
    return param.annotation or " | ".join(t.__name__ for t in param.types or ())


def check_value(param: Param, value: Any, where: str) -> list[str]:
    """Type and range problems of one value (``where`` is its config path)."""
    if param.types is not None and not _fits(value, param.types):
        return [f"{where}: expected {_expected(param)}, got {_type_name(value)} {value!r}"]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and _DROPOUT.search(param.name) and not 0 <= value < 1:
        return [f"{where}: {value!r} is not a dropout rate in [0, 1)"]
    if number and _POSITIVE.match(param.name) and value < 1:
        return [f"{where}: must be >= 1, got {value!r}"]
    return []


def check_block(model: str, block: Any, where: str) -> list[str]:
    """Unknown keys, types and ranges of one ``models.<model>`` block at config path ``where``."""
    sig = model_signature(model)
    if sig is None:
        return []
    if not isinstance(block, Mapping):
        return [f"{where}: expected a mapping of hyper-parameters, got {_type_name(block)} {block!r}"]
    problems = []
    known = sorted(sig.params)
    for key, value in block.items():
        path = f"{where}.{key}"
        if key in RESERVED.get(model, {}):
            problems.append(f"{path}: {RESERVED[model][key]}")
        elif key not in sig.params:
            if sig.open:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{path}: unknown key{hint}; {model} accepts: {', '.join(known)}")
        else:
            problems.extend(check_value(sig.params[key], value, path))
    return problems


def _divisibility(model: str, layers: list[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """``heads`` must divide ``hidden_size`` in the merged block (defaults, then each layer in order)."""
    sig = model_signature(model)
    if sig is None or not {"heads", "hidden_size"} <= set(sig.params):
        return []
    merged = {k: p.default for k, p in sig.params.items() if k in ("heads", "hidden_size")}
    where = f"<defaults of {model}>"
    for path, block in layers:
        if isinstance(block, Mapping) and ({"heads", "hidden_size"} & set(block)):
            merged.update({k: block[k] for k in ("heads", "hidden_size") if k in block})
            where = path
    heads, hidden = merged.get("heads"), merged.get("hidden_size")
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (heads, hidden))
    if ints and heads >= 1 and hidden >= 1 and hidden % heads:
        return [f"{where}: heads {heads} does not divide hidden_size {hidden}"]
    return []


def hparam_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem of every ``models``, ``datasets.<ds>.models`` and ``pretraining.model_overrides`` block."""
    from sgp4sr.models.registry import REQUIRES

    problems: list[str] = []
    top = config.get("models") or {}
    datasets = config.get("datasets") or {}
    overrides = (config.get("pretraining") or {}).get("model_overrides") or {}
    blocks = [("models", top)] + [(f"datasets.{ds}.models", (cfg or {}).get("models") or {})
                                  for ds, cfg in datasets.items()]
    blocks.append(("pretraining.model_overrides", overrides))
    for where, models in blocks:
        for model, block in models.items():
            if model not in REQUIRES:
                close = difflib.get_close_matches(str(model), list(REQUIRES), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                problems.append(f"{where}.{model}: unknown model{hint}; known: {', '.join(sorted(REQUIRES))}")
                continue
            problems.extend(check_block(model, block, f"{where}.{model}"))
    if problems:  # merged checks on top of bad values would only repeat them
        return problems
    for model in sorted(REQUIRES):
        used = [ds for ds, cfg in datasets.items() if model in ((cfg or {}).get("models") or {})]
        if model in top:
            problems.extend(_divisibility(model, [(f"models.{model}", top[model])]))
        for ds in used:
            problems.extend(_divisibility(model, [(f"models.{model}", top.get(model) or {}),
                                                  (f"datasets.{ds}.models.{model}", datasets[ds]["models"][model])]))
        if model in overrides:
            problems.extend(_divisibility(model, [(f"models.{model}", top.get(model) or {}),
                                                  (f"pretraining.model_overrides.{model}", overrides[model])]))
    return list(dict.fromkeys(problems))
