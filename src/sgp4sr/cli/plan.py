"""``sgp4sr plan --configfile ...``: the training runs a config asks for, and what they will cost.

Reads the configs as Snakemake does (``config/config.yaml``, then each
``--configfile`` merged over it: mappings merge, lists are replaced), validates
them, and prints the runs per experiment with an estimate of CPU and GPU hours
(:mod:`sgp4sr.report.budget`). Nothing is trained or downloaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_BASE = "config/config.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plan", help="runs per experiment and estimated GPU hours of a config",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", nargs="*", default=[], metavar="FILE",
                        help="configs merged over --base in this order, as snakemake --configfile")
    parser.add_argument("--base", default=DEFAULT_BASE,
                        help=f"the Snakefile's configfile (default {DEFAULT_BASE}; 'none' = no base)")
    parser.add_argument("--results", default=".",
                        help="directory holding results/<ds>/data/stats.json of finished data stages (sizes)")
    parser.add_argument("--gpu-speedup", type=float, default=None, metavar="X",
                        help="CPU-thread hours per GPU hour (default: the engine's assumed factor, printed)")
    parser.set_defaults(func=run_plan)


def load_configs(base: str | None, files: list[str]) -> tuple[dict, list[str]]:
    """The merged config and the names of the files it came from."""
    import yaml

    from sgp4sr.config import deep_merge

    paths = ([Path(base)] if base else []) + [Path(f) for f in files]
    if not paths:
        raise ValueError("no config: give --configfile FILE (or a --base)")
    config: dict = {}
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"config file {path} not found (run from the workflow's directory, or give --base)")
        config = deep_merge(config, yaml.safe_load(path.read_text()) or {})
    return config, [str(p) for p in paths]


def run_plan(args: argparse.Namespace) -> None:
    from sgp4sr.config import validate_config
    from sgp4sr.report.budget import budget, format_budget

    base = None if args.base in ("", "none") else args.base
    config, names = load_configs(base, list(args.configfile))
    validate_config(config)
    print(format_budget(budget(config, args.results), names, args.gpu_speedup))
