"""Training and ranking cost of the baselines against the first model (SASRec), on a real split.

Covers the ID and fusion baselines (SASRec, GRU4Rec, BERT4Rec, FDSA, SASRecF;
the default set) and the multimodal ones (MMMLP, UniSRec, MISSRec, HM4SR,
IISAN), each with its parameters from :data:`PARAMS` (config/paper.yaml's
values) at the common width ``--hidden`` (the paper's d = 300).

Every model runs in its own subprocess (so its peak resident memory is its
own), warms up on ``--warmup`` untimed engine batches, then trains
``--batches`` batches drawn uniformly from the whole epoch (the same ones for
every model: batches are length-bucketed, so the first ones are no sample) and
ranks ``--eval-batches`` batches of users spread evenly over the engine's
length-sorted ranking order (the middle batch of each of that many strata); per-batch times are extrapolated to one epoch and
one full (validation) ranking pass. On CUDA both run under bfloat16 autocast,
as the engine does. Features are random (seeded) with the Baby widths (image
4096, text 384): the cost of a feature model does not depend on the values.
IISAN gets a random hidden-state cache of its encoders' shapes (MiniLM 7 x 384,
CLIP ViT-B/32 13 x 768); MISSRec's per-epoch k-means is timed once and added
to its epoch; HM4SR gets the split's category labels when it has an
items.parquet (bare benchmark folders have none, so its category loss is off,
as in a real run). Ratios are against the first model of the same run.

The ID/fusion set (default):

    OMP_NUM_THREADS=1 python benchmarks/bench_baselines.py --threads 1

The multimodal set:

    OMP_NUM_THREADS=1 python benchmarks/bench_baselines.py --models sasrec,mmmlp,unisrec,missrec,hm4sr,iisan \\
        --batches 10 --eval-batches 2 --threads 1
    python benchmarks/bench_baselines.py --models sasrec,mmmlp,unisrec,missrec,hm4sr,iisan --device cuda \\
        --batches 50 --eval-batches 10

A quick smoke run: ``--batches 2 --warmup 1 --eval-batches 1``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "amazon-baby-paper-split"
FEATURE_WIDTHS = {"image": 4096, "text": 384}
IISAN_STATES = {"text": (7, 384), "image": (13, 768)}
ID_MODELS = "sasrec,gru4rec,bert4rec,fdsa,sasrecf"

#: each model's parameters besides ``hidden_size`` (config/paper.yaml; the released defaults)
PARAMS: dict[str, dict[str, Any]] = {
    "sasrec": {"layers": 2, "heads": 4, "dropout": 0.5},
    "gru4rec": {"layers": 1, "dropout": 0.3},
    "bert4rec": {"layers": 2, "heads": 4, "dropout": 0.2, "mask_ratio": 0.2},
    "fdsa": {"layers": 2, "heads": 4, "dropout": 0.5, "feature": "text"},
    "sasrecf": {"layers": 2, "heads": 4, "dropout": 0.5},
    "mmmlp": {"layers": 2, "dropout": 0.5},
    "unisrec": {"layers": 2, "heads": 2, "inner_size": 256, "dropout": 0.5, "feature": "text"},
    "missrec": {"layers": 2, "heads": 4, "inner_size": 256, "dropout": 0.5},
    "hm4sr": {"layers": 2, "heads": 2, "inner_size": 256, "dropout": 0.5},
    "iisan": {"layers": 2, "heads": 2, "dropout": 0.1},
}


def model_params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """:data:`PARAMS` at width ``--hidden``, plus what a run supplies (IISAN's cache, MISSRec's seed)."""
    params = {"hidden_size": args.hidden, **PARAMS[name]}
    if args.heads is not None and "heads" in params:
        params["heads"] = args.heads
    if name == "iisan":
        params["hidden_states"] = args.cache
    if name == "missrec":
        params["seed"] = args.seed
    return params


def random_features(n_items: int, seed: int) -> dict[str, np.ndarray]:
    """Random feature matrices of the Baby widths, row 0 zero."""
    rng = np.random.default_rng(seed)
    features = {}
    for name, width in FEATURE_WIDTHS.items():
        table = rng.standard_normal((n_items, width), dtype=np.float32)
        table[0] = 0.0
        features[name] = table
    return features


def write_iisan_cache(path: Path, n_items: int, seed: int) -> None:
    """A random IISAN hidden-state cache, written by the parent so no model's memory pays for it."""
    rng = np.random.default_rng(seed)
    states = {k: rng.standard_normal((n_items, *shape), dtype=np.float32).astype(np.float16)
              for k, shape in IISAN_STATES.items()}
    np.savez(path, **states)


def timed(step: Callable[[], object], sync: Callable[[], None]) -> float:
    """Seconds of one step, with the device synchronised on both sides."""
    sync()
    t0 = time.perf_counter()
    step()
    sync()
    return time.perf_counter() - t0


def measure(args: argparse.Namespace) -> dict:
    """One model: build, train the picked batches, rank the picked user batches; times and memory."""
    import torch

    from sgp4sr.data.load import load_split
    from sgp4sr.engine.context import ITEMS_FILE, load_item_categories
    from sgp4sr.engine.evaluate import eval_inputs
    from sgp4sr.engine.sequences import epoch_batches, left_pad, make_batch, training_examples
    from sgp4sr.engine.trainer import peak_rss_mb
    from sgp4sr.models import get_model_class
    from sgp4sr.models.base import ModelContext

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    split = load_split(args.data)
    examples = training_examples(split.train_seqs, args.max_len, args.form, split.n_items, split.train_times)
    cls = get_model_class(args.model)
    ctx = ModelContext(n_items=split.n_items, max_len=args.max_len, features=random_features(split.n_items, args.seed),
                       extra={"seed": args.seed})
    if "categories" in cls.requires:
        ctx.item_categories = load_item_categories(Path(args.data) / ITEMS_FILE, split.n_items)
    rss_before = peak_rss_mb()
    torch.manual_seed(args.seed)
    model = cls(ctx, **model_params(args.model, args)).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def discover() -> None:
        with autocast():
            model.discover_interests()

    # MISSRec re-clusters its interests before every epoch: timed once, added to the epoch
    extra_epoch_s = timed(discover, sync) if hasattr(model, "discover_interests") else 0.0

    order = epoch_batches(examples, args.batch_size, np.random.default_rng(args.seed))
    picked = np.random.default_rng(args.seed + 1).choice(len(order), min(args.batches, len(order)), replace=False)
    times, timed_targets = [], 0
    model.train()
    for i, rows in enumerate(order[:args.warmup] + [order[j] for j in sorted(picked)]):
        batch = make_batch(examples.seq[rows], examples.target[rows], examples.user[rows], examples.length[rows],
                           None if examples.times is None else examples.times[rows]).to(device)

        def step() -> None:
            with autocast():
                loss = model.calculate_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = timed(step, sync)
        if i >= args.warmup:
            times.append(seconds)
            timed_targets += int((batch.target != 0).sum())

    inputs = eval_inputs(split.train_seqs, split.valid_items, "valid")
    padded, lengths = left_pad(inputs, args.max_len)
    stamps = None if split.train_times is None else left_pad(split.train_times, args.max_len, np.int64)[0]
    users = np.argsort(lengths, kind="stable")  # the engine's ranking order
    n_eval_batches = -(-len(inputs) // args.eval_batch_size)
    k = min(args.eval_batches, n_eval_batches)  # the middle batch of each of k equal strata of that order
    spread = ((np.arange(k) + 0.5) * n_eval_batches / k).astype(int)
    eval_times = []
    model.eval()
    with torch.no_grad():
        for b in spread:
            idx = users[b * args.eval_batch_size:(b + 1) * args.eval_batch_size]
            batch = make_batch(padded[idx], lengths=lengths[idx], times=None if stamps is None else stamps[idx])
            batch = batch.to(device)

            def rank() -> None:
                with autocast():
                    model.full_sort_predict(batch)

            eval_times.append(timed(rank, sync))
    n_train_batches = len(order)
    return {
        "model": args.model,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_batch_s": float(np.mean(times)),
        "epoch_s": float(np.mean(times)) * n_train_batches + extra_epoch_s,
        "s_per_1k_targets": 1000 * float(np.sum(times)) / max(timed_targets, 1),
        "timed_targets": timed_targets,
        "per_epoch_extra_s": extra_epoch_s,
        "eval_s": float(np.mean(eval_times)) * n_eval_batches,
        "peak_rss_mb": peak_rss_mb(),
        "model_rss_mb": peak_rss_mb() - rss_before,
        "peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "train_rows": len(examples), "train_batches": n_train_batches, "users": len(inputs),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="split folder (ours or a RecBole benchmark folder)")
    p.add_argument("--models", default=ID_MODELS,
                   help=f"comma separated, the first is the reference; known: {', '.join(PARAMS)}")
    p.add_argument("--hidden", type=int, default=300, help="d for every model (the paper's 300)")
    p.add_argument("--heads", type=int, default=None, help="override every attention model's heads")
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
    p.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    p.add_argument("--one", dest="model", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def print_table(args: argparse.Namespace, results: list[dict]) -> None:
    """Markdown table; every ratio is against the first model."""
    ref = results[0]
    print(f"# {args.data.name}: {ref['users']} users, {ref['train_rows']} {args.form} rows in "
          f"{ref['train_batches']} batches of {args.batch_size}; d={args.hidden}, max_len={args.max_len}, "
          f"device {ref['device']}, {args.threads} thread(s); random features image 4096 / text 384")
    print(f"# timed: {args.batches} training batches drawn across the epoch (after {args.warmup} warm-up) and "
          f"{args.eval_batches} ranking batches of {args.eval_batch_size} users, extrapolated; ratios vs "
          f"{ref['model']}; s/1k targets = training seconds per 1000 next-item targets")
    # on the CPU the split and features dominate the resident memory: the model's own share is beside the peak
    mem = "peak_cuda_mb" if ref["peak_cuda_mb"] is not None else "model_rss_mb"
    label = "peak CUDA MB" if mem == "peak_cuda_mb" else "model's RSS MB"
    print(f"| model | trainable params | s/batch | s/1k targets | s/epoch | x | ranking s | x | peak RSS MB | x | "
          f"{label} | x |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['model']} | {r['params']:,} | {r['train_batch_s']:.3f} | {r['s_per_1k_targets']:.2f} | "
              f"{r['epoch_s']:.1f} | {r['epoch_s'] / ref['epoch_s']:.2f} | "
              f"{r['eval_s']:.1f} | {r['eval_s'] / ref['eval_s']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] / ref['peak_rss_mb']:.2f} | "
              f"{r[mem]:.0f} | {r[mem] / max(ref[mem], 1e-9):.2f} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.model:  # child: one model, JSON on stdout
        print(json.dumps(measure(args)))
        return 0
    if not args.data.exists():
        print(f"split folder not found: {args.data}", file=sys.stderr)
        return 2
    models = args.models.split(",")
    unknown = [m for m in models if m not in PARAMS]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(PARAMS)}", file=sys.stderr)
        return 2
    forwarded = list(argv if argv is not None else sys.argv[1:])
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_baselines_") as tmp:
        cache = str(Path(tmp) / "iisan_hidden.npz")
        if "iisan" in models:
            from sgp4sr.data.load import load_split  # no torch: the parent stays small

            write_iisan_cache(Path(cache), load_split(args.data).n_items, args.seed + 2)
        for model in models:
            proc = subprocess.run([sys.executable, __file__, *forwarded, "--cache", cache, "--one", model],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{model} failed:\n{proc.stderr[-4000:]}", file=sys.stderr)
                return 1
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"# done {model}: {results[-1]['epoch_s']:.1f} s/epoch", file=sys.stderr, flush=True)
    print_table(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
