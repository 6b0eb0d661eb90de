"""Training and ranking cost of the multimodal baselines (MMMLP, UniSRec, MISSRec, HM4SR, IISAN)
against SASRec on a real split, all in the paper's setting (d = 300, max_len 50, batch 256).

Every model runs in its own subprocess (its peak memory is its own), trains
``--batches`` engine batches after ``--warmup`` untimed ones and ranks
``--eval-batches`` batches of users; per-batch times are extrapolated to one
epoch and one full ranking pass. Features are random (seeded) with the Baby
widths (image 4096, text 384): cost does not depend on the values. IISAN gets
a random hidden-state cache of the configured encoders' shapes (MiniLM: 7 x
384, CLIP ViT-B/32: 13 x 768). MISSRec's per-epoch k-means is timed once and
added to its epoch. Ratios are against the first model (SASRec) of the same run.

    python benchmarks/bench_mm_baselines.py --threads 1
    python benchmarks/bench_mm_baselines.py --device cuda --batches 50 --eval-batches 10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "amazon-baby-paper-split"
FEATURE_WIDTHS = {"image": 4096, "text": 384}
IISAN_STATES = {"text": (7, 384), "image": (13, 768)}
MODELS = "sasrec,mmmlp,unisrec,missrec,hm4sr,iisan"


def model_params(name: str, hidden: int, cache: str) -> dict:
    """Each model's released defaults, at the common width ``hidden``."""
    common = {"hidden_size": hidden, "layers": 2}
    return {
        "sasrec": {**common, "heads": 4, "dropout": 0.5},
        "mmmlp": {**common, "dropout": 0.5},
        "unisrec": {**common, "heads": 2, "inner_size": 256},
        "missrec": {**common, "heads": 4, "inner_size": 256, "seed": 0},
        "hm4sr": {**common, "heads": 2, "inner_size": 256},
        "iisan": {**common, "heads": 2, "dropout": 0.1, "hidden_states": cache},
    }[name]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def random_inputs(n_items: int, seed: int, cache: Path) -> dict[str, np.ndarray]:
    """Random feature matrices (row 0 zero) and, for IISAN, a random hidden-state cache file."""
    rng = np.random.default_rng(seed)
    features = {}
    for name, width in FEATURE_WIDTHS.items():
        table = rng.standard_normal((n_items, width), dtype=np.float32)
        table[0] = 0.0
        features[name] = table
    if not cache.exists():
        states = {k: rng.standard_normal((n_items, *shape), dtype=np.float32).astype(np.float16)
                  for k, shape in IISAN_STATES.items()}
        np.savez(cache, **states)
    return features


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
    features = random_inputs(split.n_items, args.seed, Path(args.cache))
    ctx = ModelContext(n_items=split.n_items, max_len=args.max_len, features=features, extra={"seed": args.seed})
    rss_before = peak_rss_mb()
    torch.manual_seed(args.seed)
    model = get_model_class(args.model)(ctx, **model_params(args.model, args.hidden, args.cache)).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    autocast = device.type == "cuda"
    extra_epoch_s = 0.0
    if hasattr(model, "discover_interests"):  # MISSRec's k-means before every epoch
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            model.discover_interests()
        sync()
        extra_epoch_s = time.perf_counter() - t0
    times, timed_targets = [], 0
    model.train()
    # batches are length-bucketed, so the first ones are the shortest: warm up on the first
    # ``warmup`` and time ``batches`` drawn uniformly from the whole epoch (same ones for every model)
    all_batches = list(iterate_batches(examples, args.batch_size, np.random.default_rng(args.seed)))
    picked = np.random.default_rng(args.seed + 1).choice(len(all_batches), args.batches, replace=False)
    chosen = all_batches[:args.warmup] + [all_batches[j] for j in sorted(picked)]
    for i, batch in enumerate(chosen):
        batch = batch.to(device)
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model.calculate_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            timed_targets += int((batch.target != 0).sum())
    n_train_batches = -(-len(examples) // args.batch_size)

    inputs = eval_inputs(split.train_seqs, split.valid_items, "valid")
    padded, lengths = left_pad(inputs, args.max_len)
    order = np.random.default_rng(args.seed).permutation(len(inputs))
    eval_times = []
    model.eval()
    with torch.no_grad():
        for b in range(args.eval_batches):
            idx = order[b * args.eval_batch_size:(b + 1) * args.eval_batch_size]
            batch = make_batch(padded[idx], lengths=lengths[idx]).to(device)
            sync()
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                model.full_sort_predict(batch)
            sync()
            eval_times.append(time.perf_counter() - t0)
    n_eval_batches = -(-len(inputs) // args.eval_batch_size)
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
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="split folder (ours or a RecBole benchmark)")
    p.add_argument("--models", default=MODELS, help="comma separated; the first is the reference")
    p.add_argument("--hidden", type=int, default=300, help="d for every model (the paper's 300)")
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--eval-batch-size", type=int, default=1024)
    p.add_argument("--form", choices=["onepass", "prefix"], default="onepass")
    p.add_argument("--batches", type=int, default=10, help="timed training batches per model")
    p.add_argument("--warmup", type=int, default=2, help="untimed training batches first")
    p.add_argument("--eval-batches", type=int, default=2, help="timed ranking batches per model")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help=argparse.SUPPRESS)
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
    forwarded = list(argv if argv is not None else sys.argv[1:])
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_mm_") as tmp:
        cache = str(Path(tmp) / "iisan_hidden.npz")
        for model in args.models.split(","):
            proc = subprocess.run([sys.executable, __file__, *forwarded, "--cache", cache, "--one", model],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{model} failed:\n{proc.stderr[-4000:]}", file=sys.stderr)
                return 1
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"# done {model}: {results[-1]['epoch_s']:.1f} s/epoch", file=sys.stderr, flush=True)
    ref = results[0]
    print(f"# {args.data.name}: {ref['users']} users, {ref['train_rows']} {args.form} rows in "
          f"{ref['train_batches']} batches of {args.batch_size}; d={args.hidden}, max_len={args.max_len}, "
          f"device {ref['device']}, {args.threads} thread(s); random features image 4096 / text 384")
    print(f"# timed: {args.batches} training batches drawn across the epoch (after {args.warmup} warm-up) and "
          f"{args.eval_batches} ranking batches of {args.eval_batch_size} users, extrapolated; ratios vs "
          f"{ref['model']}; s/1k targets = training seconds per 1000 next-item targets")
    # on the CPU the split and features dominate the resident memory, so the ratio is of the peaks
    mem = "peak_cuda_mb" if ref["peak_cuda_mb"] is not None else "peak_rss_mb"
    print(f"| model | trainable params | s/batch | s/1k targets | s/epoch | x | ranking s | x | peak RSS MB | "
          f"{mem} | x |")
    # (the model's own share of the RSS, model_rss_mb, is in each child's JSON)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['model']} | {r['params']:,} | {r['train_batch_s']:.3f} | {r['s_per_1k_targets']:.2f} | "
              f"{r['epoch_s']:.1f} | "
              f"{r['epoch_s'] / ref['epoch_s']:.2f} | {r['eval_s']:.1f} | {r['eval_s'] / ref['eval_s']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {r[mem]:.0f} | {r[mem] / max(ref[mem], 1e-9):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
