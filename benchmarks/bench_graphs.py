"""Benchmark of the graphs stage (spec §1): sparse/chunked build vs a dense reference.

Cases (each measured in its own child process, so peak RSS is per case):
* ``baby``: the authors' Baby split (training sequences from ``baby.valid.inter``
  via ``load_split``) with random features of the paper's widths (image 4096,
  text 384): co-occurrence + both modal graphs + both k-means centre sets,
  fast implementation and the dense reference (dense ``n x n`` W, S and A,
  full row sorts) on the same input, with their ratio and an agreement check;
* ``synthetic N``: N items, about 10 interactions per item (N users with
  sequences of 5..15 items drawn with a power-law popularity), one 384-wide
  modality: the whole build, so the growth with N is visible.

Run (from the repository root; the machine is shared, so it runs on 2 threads):
    python benchmarks/bench_graphs.py --threads 2 > benchmarks/bench_graphs.log 2>&1
Targets (issue 4): Baby < 20 s on 2 cores; 100k items < 10 min and < 8 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BABY = REPO.parent / "shared" / "data" / "amazon-baby-paper-split"
H, MU_M, MU_O, K, SEED = 10, 2.5, 0.3, 50, 2026


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- inputs
def baby_inputs(folder: Path) -> tuple[list[np.ndarray], int, dict[str, np.ndarray]]:
    from sgp4sr.data.load import load_split

    split = load_split(folder)
    rng = np.random.default_rng(SEED)
    feats = {}
    for name, width in (("image", 4096), ("text", 384)):
        f = rng.standard_normal((split.n_items, width), dtype=np.float32)
        f[0] = 0
        feats[name] = f
    return split.train_seqs, split.n_items, feats


def synthetic_inputs(n_real: int) -> tuple[list[np.ndarray], int, dict[str, np.ndarray]]:
    rng = np.random.default_rng(SEED)
    pop = 1.0 / (np.arange(n_real) + 10.0) ** 0.8
    pop /= pop.sum()
    lengths = rng.integers(5, 16, size=n_real)  # mean 10: ~10 interactions per item
    flat = rng.choice(n_real, size=int(lengths.sum()), p=pop) + 1
    seqs = np.split(flat.astype(np.int64), np.cumsum(lengths)[:-1])
    f = rng.standard_normal((n_real + 1, 384), dtype=np.float32)
    f[0] = 0
    return seqs, n_real + 1, {"text": f}


# ---------------------------------------------------------------- builds
def fast_build(seqs, n_items, feats) -> tuple[dict, dict]:
    from sgp4sr.graphs import build_centres, build_cooccurrence, build_modal_graph

    times, graphs = {}, {}
    t = time.perf_counter()
    w = build_cooccurrence(seqs, n_items)
    times["cooc"] = time.perf_counter() - t
    t = time.perf_counter()
    for name, f in feats.items():
        graphs[name] = build_modal_graph(f, w, H, MU_M, MU_O).graph
    times["graphs"] = time.perf_counter() - t
    t = time.perf_counter()
    for f in feats.values():
        build_centres(f, K, SEED)
    times["centres"] = time.perf_counter() - t
    return times, graphs


def dense_build(seqs, n_items, feats) -> tuple[dict, dict]:
    """The reference the way the authors' code works: dense n x n W, S and A, full row sorts."""
    from sgp4sr.graphs import build_centres
    from sgp4sr.graphs.neighbours import neighbour_sizes

    times, graphs = {}, {}
    t = time.perf_counter()
    w = np.zeros((n_items, n_items))
    for s in seqs:
        k, j = np.triu_indices(len(s), 1)
        np.add.at(w, (s[k], s[j]), 1.0 / (j - k))
        np.add.at(w, (s[j], s[k]), 1.0 / (j - k))
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    np.divide(w, norms, out=w, where=norms > 0)
    w = w.astype(np.float32)
    times["cooc"] = time.perf_counter() - t
    t = time.perf_counter()
    h_m, h_o = neighbour_sizes(H, MU_M, MU_O)
    n_o = np.argsort(-w, axis=1, kind="stable")[:, :h_o]
    o_ok = np.take_along_axis(w, n_o, axis=1) > 0
    for name, f in feats.items():
        norms = np.linalg.norm(f, axis=1, keepdims=True)
        unit = np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)
        sims = unit @ unit.T
        sims[:, 0] = -np.inf
        n_m = np.argsort(-sims, axis=1, kind="stable")[:, :h_m]
        del sims
        in_o = ((n_m[:, :, None] == n_o[:, None, :]) & o_ok[:, None, :]).any(axis=2)
        order = np.argsort(~in_o, axis=1, kind="stable")
        final = np.take_along_axis(n_m, order, axis=1)[:, :H]
        a = np.zeros((n_items, n_items), dtype=np.float32)
        np.put_along_axis(a, final, 1.0 / H, axis=1)
        a[0] = 0
        graphs[name] = a
    times["graphs"] = time.perf_counter() - t
    t = time.perf_counter()
    for f in feats.values():
        build_centres(f, K, SEED)
    times["centres"] = time.perf_counter() - t
    return times, graphs


def child(args: argparse.Namespace) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        if args.case == "baby":
            seqs, n_items, feats = baby_inputs(Path(args.baby))
        else:
            seqs, n_items, feats = synthetic_inputs(int(args.case))
        import sgp4sr.graphs  # noqa: F401  (imports are not part of the build time)

        base = rss_mb()
        start, cpu = time.perf_counter(), time.process_time()
        times, graphs = (fast_build if args.impl == "fast" else dense_build)(seqs, n_items, feats)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
        peak = peak_rss_mb()
        agree = None
        if args.impl == "dense":  # same neighbour sets as the fast build?
            fast_graphs = fast_build(seqs, n_items, feats)[1]
            agree = all(((fast_graphs[m] != 0).toarray() == (graphs[m] != 0)).all() for m in graphs)
    n_inter = int(sum(len(s) for s in seqs))
    print(json.dumps({"case": args.case, "impl": args.impl, "n_items": n_items - 1, "train_inter": n_inter,
                      "total": total, "cpu": cpu, **times, "peak_mb": peak, "delta_mb": peak - base, "agree": agree}))


def run_child(case: str, impl: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--case", case, "--impl", impl,
           "--threads", str(args.threads), "--baby", str(args.baby)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY="PASSIVE")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise RuntimeError(f"{case}/{impl} failed with exit code {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baby", default=str(DEFAULT_BABY))
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-dense", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows = []
    plan = [("baby", "fast")] + ([] if args.skip_dense else [("baby", "dense")])
    plan += [(str(n), "fast") for n in args.sizes]
    for case, impl in plan:
        rows.append(run_child(case, impl, args))
        print(f"done {case}/{impl}: {rows[-1]['total']:.1f}s", file=sys.stderr, flush=True)
    print(f"threads={args.threads}; H={H} mu_m={MU_M} mu_o={MU_O} k={K}; times: wall s (cpu = process CPU s, all "
          f"threads; wall >> cpu/threads means a loaded machine); peakMB = peak RSS of the case's process, "
          f"buildMB = peak minus RSS after loading inputs; load average at start {os.getloadavg()[0]:.1f}")
    print(f"{'case':>8} {'impl':>5} {'items':>7} {'inter':>8} {'cooc':>7} {'graphs':>7} {'centres':>7} "
          f"{'total':>7} {'cpu':>7} {'peakMB':>7} {'buildMB':>7}  notes")
    fast_baby = next(r for r in rows if r["case"] == "baby" and r["impl"] == "fast")
    for r in rows:
        note = ""
        if r["impl"] == "dense":
            note = (f"dense/fast: time x{r['total'] / fast_baby['total']:.1f}, build memory "
                    f"x{r['delta_mb'] / max(fast_baby['delta_mb'], 1):.1f}; same graphs: {r['agree']}")
        print(f"{r['case']:>8} {r['impl']:>5} {r['n_items']:>7} {r['train_inter']:>8} {r['cooc']:>7.2f} "
              f"{r['graphs']:>7.2f} {r['centres']:>7.2f} {r['total']:>7.2f} {r['cpu']:>7.1f} {r['peak_mb']:>7.0f} "
              f"{r['delta_mb']:>7.0f}  {note}")


if __name__ == "__main__":
    main()
