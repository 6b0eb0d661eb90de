"""Import the authors' Baby split through the ``benchmark`` source; print its stats and wall times.

Steps timed (same run, same machine):
* ``read raw`` (reference): reading the three atomic files with pandas, no checks;
* ``import``: ``import_benchmark`` (check every row against the valid rows,
  rebuild sequences, write the data folder: parquet tables + .inter files);
* ``load_split``: reading the written folder back (what every later stage does);
* ``stats``: ``compute_stats`` on it.
Ratios are against the raw read. Expected stats (paper, Table 1): 19,445
users, 7,050 items, 160,792 interactions.

    python benchmarks/bench_data_import.py [../shared/data/amazon-baby-paper-split]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from sgp4sr.data.benchmark import import_benchmark
from sgp4sr.data.load import find_split_files, load_split
from sgp4sr.data.stats import compute_stats

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "amazon-baby-paper-split"
EXPECTED = {"users": 19445, "items": 7050, "interactions": 160792}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(DEFAULT), help="benchmark folder <name>.{train,valid,test}.inter")
    parser.add_argument("--name", help="the <name> prefix (default: the only one in the folder)")
    args = parser.parse_args(argv)

    files = find_split_files(args.folder, args.name)
    times: dict[str, float] = {}
    t = time.perf_counter()
    for path in files.values():
        if path is not None:
            pd.read_csv(path, sep="\t", dtype=str)
    times["read raw (reference)"] = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "data"
        t = time.perf_counter()
        import_benchmark(files["train"], files["valid"], files["test"], out)
        times["import"] = time.perf_counter() - t
        t = time.perf_counter()
        data = load_split(out)
        times["load_split"] = time.perf_counter() - t
        t = time.perf_counter()
        stats = compute_stats(out, EXPECTED)
        times["stats"] = time.perf_counter() - t

    print(f"split: {args.folder}")
    print(f"{'':14}{'ours':>10}{'paper':>10}")
    for key in ("users", "items", "interactions"):
        print(f"{key:14}{stats[key]:>10,}{EXPECTED[key]:>10,}")
    print(f"{'avg_length':14}{stats['avg_length']:>10.3f}")
    print(f"{'sparsity':14}{stats['sparsity']:>10.5f}")
    print(f"load_split: n_users={data.n_users} n_items={data.n_items} (incl. padding)")
    print()
    ref = times["read raw (reference)"]
    print(f"{'step':24}{'seconds':>10}{'x reference':>14}")
    for step, sec in times.items():
        print(f"{step:24}{sec:>10.2f}{sec / ref:>14.1f}")
    ok = stats["matches_paper"]
    print("\nmatches the paper's row" if ok else "\nDOES NOT match the paper's row")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
