"""Running the real Snakefile in a temporary copy of the workflow, shared by the workflow tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what a working copy of the workflow needs from the repository
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "profiles")


def copy_workflow(work: Path) -> Path:
    """Copy the Snakefile, rules, configs and profiles into ``work``; return it."""
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.exists():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    return work


def snakemake_command(workdir: Path) -> list[str]:
    """``python -m snakemake`` on ``workdir``'s Snakefile, with ``workdir`` as working directory."""
    return [sys.executable, "-m", "snakemake", "--directory", str(workdir), "--snakefile", str(workdir / "Snakefile")]


def snakemake_env() -> dict[str, str]:
    """The environment with this interpreter's scripts (the ``sgp4sr`` command) first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def run_snakemake(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run Snakemake on ``workdir`` with ``args``; output captured as text."""
    return subprocess.run([*snakemake_command(workdir), *args], capture_output=True, text=True,
                          env=snakemake_env(), timeout=timeout)
