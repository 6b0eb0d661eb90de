"""Training and evaluation cost per model and training form on a real split (default: the authors' Baby).

For every (model, train_form) it times a sample of training steps and of
evaluation batches in a fresh subprocess (so each row's peak RSS is its own)
and extrapolates to one epoch / one full validation ranking. Prints a table
with the ratios the issues ask for: onepass / prefix for each model, and
SGP4SR / SASRec of the same size in the same run. SGP4SR gets random
features of the paper's widths (image 4096, text 384) and graphs built by the
graph stage's own builders.

    python benchmarks/bench_train.py --threads 1 --batches 10
    python benchmarks/bench_train.py --models sasrec --forms onepass,prefix --hidden 300
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "amazon-baby-paper-split"
GRAPHS = {"knn_k": 10, "mu_m": 2.5, "mu_o": 0.3, "centres": 50}
WIDTHS = {"image": 4096, "text": 384}
SEED = 2026


def build_inputs(data: Path, root: Path) -> None:
    """Random features and the graph stage's artefacts for SGP4SR, in the run layout under ``root``."""
    import numpy as np

    from sgp4sr.data.load import load_split
    from sgp4sr.layout import graph_suffix
    from sgp4sr.graphs import build_centres, build_cooccurrence, build_modal_graph, save_centres, save_sparse
    from sgp4sr.io import save_npy

    split = load_split(data)
    rng = np.random.default_rng(SEED)
    w = build_cooccurrence(split.train_seqs, split.n_items)
    save_sparse(root / "graphs" / "cooccurrence.npz", w)
    for m, width in WIDTHS.items():
        feats = rng.standard_normal((split.n_items, width), dtype=np.float32)
        feats[0] = 0
        save_npy(root / "features" / f"{m}.npy", feats)
        graph = build_modal_graph(feats, w, GRAPHS["knn_k"], GRAPHS["mu_m"], GRAPHS["mu_o"])
        save_sparse(root / "graphs" / "clean" / f"{m}_{graph_suffix(GRAPHS)}.npz", graph.graph)
        save_centres(root / "graphs" / "clean" / f"{m}_centres_k{GRAPHS['centres']}_s{SEED}.npz",
                     build_centres(feats, GRAPHS["centres"], SEED, n_init=1, max_iter=20))


def measure(cfg: dict) -> dict:
    """One row, run in a fresh process: time ``batches`` training steps and ``eval_users`` rankings."""
    import numpy as np
    import torch

    from sgp4sr.data.load import load_split
    from sgp4sr.engine.context import context_files, load_context
    from sgp4sr.engine.evaluate import eval_inputs, rank_users
    from sgp4sr.engine.device import resolve_device
    from sgp4sr.engine.sequences import epoch_batches, make_batch, training_examples
    from sgp4sr.engine.trainer import peak_rss_mb
    from sgp4sr.io import seed_everything
    from sgp4sr.models.registry import get_model_class

    torch.set_num_threads(cfg["threads"])
    device = resolve_device(cfg["device"])
    split = load_split(cfg["data"])
    cls = get_model_class(cfg["model"])
    root = Path(cfg["inputs"]) if cfg["inputs"] else None
    files = context_files(cls.requires, list(WIDTHS), root and root / "features", root and root / "graphs",
                          graph_settings=GRAPHS, centres_seed=SEED)
    ctx = load_context(files, split.n_items, cfg["max_len"])
    seed_everything(1)
    params = {"hidden_size": cfg["hidden"], "layers": 2, "heads": 4, "dropout": 0.5}
    if cfg["model"] == "gru4rec":
        params = {"hidden_size": cfg["hidden"], "dropout": 0.3}
    model = cls(ctx, **params).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    examples = training_examples(split.train_seqs, cfg["max_len"], cfg["form"], split.n_items)
    order = epoch_batches(examples, cfg["batch_size"], np.random.default_rng(0))
    autocast = device.type == "cuda"

    def step(idx: np.ndarray) -> None:
        batch = make_batch(examples.seq[idx], examples.target[idx], examples.user[idx], examples.length[idx])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model.calculate_loss(batch.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    for idx in order[:2]:  # warm-up (allocator, kernels)
        step(idx)
    sample = order[2:2 + cfg["batches"]]
    sync()
    t0 = time.perf_counter()
    for idx in sample:
        step(idx)
    sync()
    train_s = time.perf_counter() - t0
    sampled_targets = sum(int(np.count_nonzero(examples.target[idx])) for idx in sample)
    epoch_s = train_s / max(sampled_targets, 1) * examples.n_targets

    # every k-th user in length order with a k times smaller batch: the same batch widths as a full
    # ranking (which sorts users by length), so the extrapolation is fair
    inputs = eval_inputs(split.train_seqs, split.valid_items, "valid")
    k = max(1, split.n_users // cfg["eval_users"])
    users = np.argsort([len(x) for x in inputs], kind="stable")[::k]
    t0 = time.perf_counter()
    rank_users(model, [inputs[u] for u in users], split.valid_items[users], cfg["max_len"],
               max(1, cfg["eval_batch_size"] // k), device, autocast=autocast)
    sync()
    eval_s = (time.perf_counter() - t0) / len(users) * split.n_users
    return {"model": cfg["model"], "form": cfg["form"], "d": cfg["hidden"], "rows": len(examples),
            "examples": examples.n_targets, "s_per_epoch": epoch_s, "examples_per_s": examples.n_targets / epoch_s,
            "eval_s": eval_s, "peak_rss_mb": peak_rss_mb(), "device": str(device),
            "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA.resolve())
    parser.add_argument("--models", default="sasrec,sgp4sr")
    parser.add_argument("--forms", default="onepass,prefix")
    parser.add_argument("--hidden", type=int, default=300)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=10, help="timed training steps per row (after 2 warm-up)")
    parser.add_argument("--eval-users", type=int, default=4096, help="users ranked per row (extrapolated)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--inputs-dir", type=Path, help="keep (and reuse) SGP4SR's random features + graphs here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return

    models = args.models.split(",")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        inputs = ""
        if any(m != "sasrec" and m != "gru4rec" for m in models):
            inputs = str(args.inputs_dir or tmp)
            if not (Path(inputs) / "graphs" / "cooccurrence.npz").exists():
                t0 = time.perf_counter()
                build_inputs(args.data, Path(inputs))
                print(f"# built random features + graphs in {time.perf_counter() - t0:.0f}s", flush=True)
        rows = []
        for model in models:
            for form in args.forms.split(","):
                cfg = {"data": str(args.data), "model": model, "form": form, "hidden": args.hidden,
                       "max_len": args.max_len, "batch_size": args.batch_size, "eval_batch_size": args.eval_batch_size,
                       "batches": args.batches, "eval_users": args.eval_users, "threads": args.threads,
                       "device": args.device, "inputs": inputs}
                out = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)], env=env,
                                     capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{model}/{form} failed:\n{out.stderr[-3000:]}")
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)

    print(f"\n{'model':8} {'form':8} {'d':>4} {'rows':>7} {'examples':>8} {'s/epoch':>8} {'ex/s':>7} "
          f"{'eval s':>7} {'RSS MB':>7} {'CUDA MB':>8}")
    for r in rows:
        cuda = f"{r['peak_cuda_mb']:.0f}" if r["peak_cuda_mb"] is not None else "-"
        print(f"{r['model']:8} {r['form']:8} {r['d']:>4} {r['rows']:>7} {r['examples']:>8} {r['s_per_epoch']:>8.1f} "
              f"{r['examples_per_s']:>7.0f} {r['eval_s']:>7.1f} {r['peak_rss_mb']:>7.0f} {cuda:>8}")
    by = {(r["model"], r["form"]): r for r in rows}
    print()
    for model in models:
        if (model, "onepass") in by and (model, "prefix") in by:
            print(f"{model}: onepass / prefix seconds per epoch = "
                  f"{by[model, 'onepass']['s_per_epoch'] / by[model, 'prefix']['s_per_epoch']:.2f}")
    for form in args.forms.split(","):
        if ("sgp4sr", form) in by and ("sasrec", form) in by:
            print(f"{form}: sgp4sr / sasrec seconds per epoch = "
                  f"{by['sgp4sr', form]['s_per_epoch'] / by['sasrec', form]['s_per_epoch']:.2f}, eval = "
                  f"{by['sgp4sr', form]['eval_s'] / by['sasrec', form]['eval_s']:.2f}")
    print(f"# device {rows[0]['device'] if rows else '-'}, threads {args.threads}, "
          f"{args.batches} timed steps and {args.eval_users} ranked users per row (extrapolated)")


if __name__ == "__main__":
    main()
