"""Training and ranking cost of BERT4Rec, FDSA and SASRecF against SASRec, on a real split.

Each model runs in its own subprocess (so its peak resident memory is its
own), trains ``--batches`` batches of the engine's batching (after
``--warmup`` untimed ones) and ranks ``--eval-batches`` batches of users
spread evenly over the engine's length-sorted ranking order; the per-batch
times are extrapolated to one epoch and to one full (validation) ranking pass.
Features are random (seeded) with the Baby widths (image 4096, text 384):
the cost of a feature model does not depend on the values. Ratios are against
SASRec measured in the same run.

    python benchmarks/bench_baselines.py --threads 1
    python benchmarks/bench_baselines.py --data ../shared/data/amazon-baby-paper-split \\
        --models sasrec,bert4rec,fdsa,sasrecf --hidden 300 --batch-size 256 --batches 20
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "amazon-baby-paper-split"
FEATURE_WIDTHS = {"image": 4096, "text": 384}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(args: argparse.Namespace) -> dict:
    """One model: build, train ``batches`` batches, rank ``eval_batches`` batches; times and memory."""
    import torch

    from sgp4sr.data.load import load_split
    from sgp4sr.engine.evaluate import eval_inputs
    from sgp4sr.engine.sequences import iterate_batches, left_pad, make_batch, training_examples
    from sgp4sr.models import get_model_class
    from sgp4sr.models.base import ModelContext

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    split = load_split(args.data)
    examples = training_examples(split.train_seqs, args.max_len, args.form, split.n_items)
    rng = np.random.default_rng(args.seed)
    features = {}
    for name, width in FEATURE_WIDTHS.items():
        table = rng.standard_normal((split.n_items, width), dtype=np.float32)
        table[0] = 0.0
        features[name] = table
    ctx = ModelContext(n_items=split.n_items, max_len=args.max_len, features=features)
    rss_before = peak_rss_mb()

    torch.manual_seed(args.seed)
    params = dict(hidden_size=args.hidden, layers=2, heads=args.heads, dropout=0.5)
    if args.model == "bert4rec":
        params.update(dropout=0.2, mask_ratio=0.2)
    model = get_model_class(args.model)(ctx, **params).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    batches = iterate_batches(examples, args.batch_size, np.random.default_rng(args.seed))
    times = []
    model.train()
    for i, batch in enumerate(batches):
        if i >= args.warmup + args.batches:
            break
        batch = batch.to(device)
        sync()
        t0 = time.perf_counter()
        loss = model.calculate_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    n_train_batches = -(-len(examples) // args.batch_size)

    inputs = eval_inputs(split.train_seqs, split.valid_items, "valid")
    padded, lengths = left_pad(inputs, args.max_len)
    # the engine ranks users in order of length; time batches spread evenly over that order
    order = np.argsort(lengths, kind="stable")
    n_eval_batches = -(-len(inputs) // args.eval_batch_size)
    picked = np.unique(np.linspace(0, n_eval_batches - 1, min(args.eval_batches, n_eval_batches)).round().astype(int))
    eval_times = []
    model.eval()
    with torch.no_grad():
        for b in picked:
            idx = order[b * args.eval_batch_size:(b + 1) * args.eval_batch_size]
            batch = make_batch(padded[idx], lengths=lengths[idx]).to(device)
            sync()
            t0 = time.perf_counter()
            model.full_sort_predict(batch)
            sync()
            eval_times.append(time.perf_counter() - t0)
    return {
        "model": args.model,
        "params": sum(p.numel() for p in model.parameters()),
        "train_batch_s": float(np.mean(times)),
        "epoch_s": float(np.mean(times)) * n_train_batches,
        "eval_s": float(np.mean(eval_times)) * n_eval_batches,
        "peak_rss_mb": peak_rss_mb(),
        "model_rss_mb": peak_rss_mb() - rss_before,
        "peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "train_rows": len(examples), "train_batches": n_train_batches, "users": len(inputs),
        "device": str(device), "threads": args.threads,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="split folder (ours or a RecBole benchmark folder)")
    p.add_argument("--models", default="sasrec,bert4rec,fdsa,sasrecf", help="comma separated; the first is the reference")
    p.add_argument("--hidden", type=int, default=300, help="d (the paper fixes 300)")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--eval-batch-size", type=int, default=1024)
    p.add_argument("--form", choices=["onepass", "prefix"], default="onepass")
    p.add_argument("--batches", type=int, default=20, help="timed training batches per model")
    p.add_argument("--warmup", type=int, default=2, help="untimed training batches first")
    p.add_argument("--eval-batches", type=int, default=3, help="timed ranking batches per model")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--one", dest="model", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.model:  # child: one model, JSON on stdout
        print(json.dumps(measure(args)))
        return 0
    if not args.data.exists():
        print(f"split folder not found: {args.data}", file=sys.stderr)
        return 2
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    results = []
    for model in args.models.split(","):
        proc = subprocess.run([sys.executable, __file__, *forwarded, "--one", model],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{model} failed:\n{proc.stderr}", file=sys.stderr)
            return 1
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ref = results[0]
    print(f"# {args.data.name}: {ref['users']} users, {ref['train_rows']} {args.form} rows in "
          f"{ref['train_batches']} batches of {args.batch_size}; d={args.hidden}, max_len={args.max_len}, "
          f"device {ref['device']}, {args.threads} thread(s); features random image 4096 / text 384")
    print(f"# timed: {args.batches} training batches (after {args.warmup}) and {args.eval_batches} ranking "
          f"batches of {args.eval_batch_size} users, extrapolated; ratios vs {ref['model']}")
    mem = "peak_cuda_mb" if ref["peak_cuda_mb"] is not None else "model_rss_mb"
    print(f"| model | params | s/batch | s/epoch | x | ranking s | x | peak RSS MB | {mem} | x |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['model']} | {r['params']:,} | {r['train_batch_s']:.3f} | {r['epoch_s']:.1f} | "
              f"{r['epoch_s'] / ref['epoch_s']:.2f} | {r['eval_s']:.1f} | {r['eval_s'] / ref['eval_s']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {r[mem]:.0f} | {r[mem] / max(ref[mem], 1e-9):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
