"""SGP4SR vs a same-size SASRec: training seconds per epoch, evaluation seconds, peak memory.

On the authors' Baby split (``../shared/data/amazon-baby-paper-split``) with
random features of the paper's widths (image 4096, text 384) and graphs built
by :mod:`sgp4sr.graphs` (H=10, mu_m=2.5, mu_o=0.3, k=50). Both models get the
same batches (the engine's length-bucketed order, same seed), d=300, 2 layers,
4 heads, dropout 0.5, batch 256, max length 50.

A full CPU epoch of SGP4SR takes many minutes on a shared 2-core machine, so
by default ``--batches`` training batches and ``--eval-users`` validation
users are timed and extrapolated to the full epoch and the full user set (the
table says so). The samples are spread over the batch widths (one batch from
the middle of each stratum of the width-sorted batches; evaluation batches
cut from the length-sorted users as the engine does), so they carry the
epoch's mix of short and long rows. ``--batches 0 --eval-users 0``
times everything. Each model runs in its own fresh process so its peak memory
(RSS on CPU, allocated memory on CUDA) is its own.

    python benchmarks/bench_sgp4sr.py --threads 2
    python benchmarks/bench_sgp4sr.py --device cuda --batches 0 --eval-users 0

Measured 2026-11-27 on the shared 2-core CPU (load ~10, so absolute seconds
are inflated; the ratios come from the same run): one-pass, 4/77 batches,
1024 users: SGP4SR/SASRec train 11.5x, eval 8.0x, peak RSS 3.3 GB vs 1.2 GB;
prefix form, 4/401 batches: train 5.9x, eval 6.7x. The floor is the centre
attention: every training example needs ``k x L x modalities`` centre rows
through the feed-forward (5.1M centre rows per modality per layer per epoch
on Baby at k=50), against about one row per example for a one-pass SASRec.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

DEFAULT_SPLIT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "amazon-baby-paper-split"
WIDTHS = {"image": 4096, "text": 384}
HIDDEN = dict(hidden_size=300, layers=2, heads=4, dropout=0.5)


def build_inputs(split_dir: Path, out: Path, k: int, seed: int) -> dict:
    """Random features and the graph stage's artefacts, saved so each model process loads the same files.

    Reused from ``out`` when a previous run left them there (``--cache``): on a
    busy 2-core machine k-means over 4096-wide rows alone takes minutes. The
    k-means runs once (``n_init=1``, 20 iterations): the clusters of random
    features carry no signal, only their sizes matter for the timing.
    """
    from sgp4sr.data.load import load_split
    from sgp4sr.graphs import build_centres, build_cooccurrence, build_modal_graph

    split = load_split(split_dir)
    done = out / f"inputs_k{k}_s{seed}.done"
    if done.exists():
        w = sp.load_npz(out / "cooccurrence.npz")
        return {"n_items": split.n_items, "n_users": split.n_users, "nnz_w": int(w.nnz), "cached": True}
    rng = np.random.default_rng(seed)
    timings = {}
    t0 = time.perf_counter()
    w = build_cooccurrence(split.train_seqs, split.n_items)
    timings["cooccurrence_s"] = time.perf_counter() - t0
    sp.save_npz(out / "cooccurrence.npz", w)
    for m, width in WIDTHS.items():
        f = rng.standard_normal((split.n_items, width), dtype=np.float32)
        f[0] = 0
        np.save(out / f"{m}.npy", f)
        t0 = time.perf_counter()
        sp.save_npz(out / f"{m}_graph.npz", build_modal_graph(f, w, 10, 2.5, 0.3).graph)
        timings[f"{m}_graph_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sp.save_npz(out / f"{m}_centres.npz", build_centres(f, k, seed=seed, n_init=1, max_iter=20).membership)
        timings[f"{m}_centres_s"] = time.perf_counter() - t0
    done.touch()
    return {"n_items": split.n_items, "n_users": split.n_users, "nnz_w": int(w.nnz), **timings}


def strata(n: int, m: int) -> list[int]:
    """Indices of the middle element of ``m`` equal strata of ``range(n)`` (a spread, deterministic sample)."""
    m = min(m, n)
    return sorted({int((i + 0.5) * n / m) for i in range(m)})


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(model_name: str, args: argparse.Namespace, inputs: Path, queue) -> None:
    """Child process: time training batches and evaluation of one model, report peak memory."""
    import torch

    from sgp4sr.engine.trainer import train_step
    from sgp4sr.data.load import load_split
    from sgp4sr.engine.evaluate import eval_inputs, rank_users
    from sgp4sr.engine.sequences import epoch_batches, iterate_batches, training_examples
    from sgp4sr.models.base import ModelContext
    from sgp4sr.models.registry import get_model_class

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    split = load_split(args.split)
    ctx = ModelContext(n_items=split.n_items, max_len=args.max_len)
    if model_name == "sgp4sr":
        ctx.cooccurrence = sp.load_npz(inputs / "cooccurrence.npz").tocsr()
        for m in WIDTHS:
            ctx.modal_graphs[m] = sp.load_npz(inputs / f"{m}_graph.npz").tocsr()
            ctx.centres[m] = sp.load_npz(inputs / f"{m}_centres.npz").tocsr()
    examples = training_examples(split.train_seqs, args.max_len, args.form, split.n_items)
    torch.manual_seed(args.seed)
    model = get_model_class(model_name)(ctx, **HIDDEN).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rss_before = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    autocast = device.type == "cuda"

    batches = list(iterate_batches(examples, epoch_batches(examples, args.batch_size, np.random.default_rng(args.seed))))
    n_batches = len(batches)
    if args.batches:  # one batch from the middle of each of `batches` equal strata of batch widths
        by_width = sorted(range(n_batches), key=lambda i: batches[i].seq.size(1))
        batches = [batches[by_width[i]] for i in strata(n_batches, args.batches)]

    def step(batch) -> None:
        train_step(model, optimizer, batch, device, autocast)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    model.train()
    if device.type == "cuda":
        step(batches[0])  # warm-up (allocator, kernels), not timed
        sync()
    t0 = time.perf_counter()
    for batch in batches:
        step(batch)
    sync()
    train_s = time.perf_counter() - t0
    epoch_s = train_s / len(batches) * n_batches

    # Evaluation batches are cut from the length-sorted users (as rank_users does); time whole
    # batches from the middle of equal strata of that order, so each has its real width.
    inputs_v = eval_inputs(split.train_seqs, split.valid_items, "valid")
    order = np.argsort([min(len(s), args.max_len) for s in inputs_v], kind="stable")
    n_eval = -(-split.n_users // args.eval_batch_size)
    picks = strata(n_eval, max(1, args.eval_users // args.eval_batch_size)) if args.eval_users else range(n_eval)
    groups = [order[i * args.eval_batch_size:(i + 1) * args.eval_batch_size] for i in picks]
    sync()
    t0 = time.perf_counter()
    ranks = np.concatenate([
        rank_users(model, [inputs_v[u] for u in g], split.valid_items[g], args.max_len, args.eval_batch_size,
                   device, autocast=autocast) for g in groups])
    sync()
    eval_s = (time.perf_counter() - t0) * n_eval / len(groups)
    users = np.concatenate(groups)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _rss_mb()
    queue.put({
        "model": model_name, "epoch_s": epoch_s, "eval_s": eval_s, "timed_batches": len(batches),
        "epoch_batches": n_batches, "examples": examples.n_targets, "eval_users_timed": len(users),
        "peak_mb": peak, "rss_before_train_mb": rss_before, "mean_rank": float(np.mean(ranks)),
        "params": sum(p.numel() for p in model.parameters()),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=DEFAULT_SPLIT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--form", choices=["onepass", "prefix"], default="onepass")
    parser.add_argument("--batches", type=int, default=8, help="timed training batches (0: the whole epoch)")
    parser.add_argument("--eval-users", type=int, default=1024,
                        help="timed validation users, in whole evaluation batches (0: all)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-batch-size", type=int, default=512)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--models", nargs="+", default=["sasrec", "sgp4sr"])
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder to keep the random features and graphs in between runs (default: a temp folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.cache or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        info = build_inputs(args.split, folder, args.k, args.seed)
        built = "reused from the cache" if info.get("cached") else (
            f"built in {time.perf_counter() - t0:.1f}s "
            f"({', '.join(f'{k} {v:.1f}' for k, v in info.items() if k.endswith('_s'))})")
        print(f"inputs: {info['n_users']} users, {info['n_items'] - 1} items, W nnz {info['nnz_w']}; graphs {built}")
        results = []
        spawn = mp.get_context("spawn")  # fresh process: its own peak memory, no forked thread pools
        for name in args.models:
            queue = spawn.Queue()
            proc = spawn.Process(target=measure, args=(name, args, folder, queue))
            proc.start()
            results.append(queue.get())
            proc.join()

    sampled = "extrapolated from a sample" if args.batches or args.eval_users else "measured in full"
    print(f"\ndevice {args.device}, threads {args.threads}, form {args.form}, batch {args.batch_size}, "
          f"d=300 L=2 h=4 k={args.k}, t={args.max_len} ({sampled}: "
          f"{results[0]['timed_batches']}/{results[0]['epoch_batches']} batches, "
          f"{results[0]['eval_users_timed']}/{info['n_users']} users)")
    mem = "peak CUDA MB" if args.device.startswith("cuda") else "peak RSS MB"
    print(f"{'model':8} {'s/epoch':>10} {'eval s':>9} {mem:>13} {'params':>11} {'examples/s':>11}")
    for r in results:
        print(f"{r['model']:8} {r['epoch_s']:10.1f} {r['eval_s']:9.1f} {r['peak_mb']:13.0f} {r['params']:11d} "
              f"{r['examples'] / r['epoch_s']:11.0f}")
    by = {r["model"]: r for r in results}
    if {"sasrec", "sgp4sr"} <= set(by):
        a, b = by["sgp4sr"], by["sasrec"]
        print(f"ratio sgp4sr/sasrec: train {a['epoch_s'] / b['epoch_s']:.2f}x, eval {a['eval_s'] / b['eval_s']:.2f}x, "
              f"peak memory {a['peak_mb'] / b['peak_mb']:.2f}x")


if __name__ == "__main__":
    main()
