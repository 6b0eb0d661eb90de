"""Entry point of the ``sgp4sr`` command.

Each stage module in this package exposes ``register(subparsers)`` which adds
its sub-command(s) and sets ``func`` on the parser; the Snakemake rules call
exactly these commands, so a stage run by hand and a stage run by the
workflow execute the same code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sgp4sr import __version__
from sgp4sr.io import setup_logging

# Stage modules, in pipeline order (then `plan`, which reads a config only). A module missing here is not offered.
STAGES = ("prepare", "features", "graphs", "train", "report", "plan")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgp4sr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sgp4sr {__version__}")
    parser.add_argument("--log", help="also write the log to this file (Snakemake's log:)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="STAGE")
    sub.required = True
    for stage in STAGES:
        try:
            module = importlib.import_module(f"sgp4sr.cli.{stage}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sgp4sr.cli.{stage}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log, logging.DEBUG if args.verbose else logging.INFO)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        logging.getLogger("sgp4sr").error("interrupted")
        return 130
    except Exception as exc:  # the message last, where a user looks first
        log = logging.getLogger("sgp4sr")
        log.debug("traceback", exc_info=True)
        log.error("%s: %s", type(exc).__name__, exc)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
