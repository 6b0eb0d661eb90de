"""Throughput of the feature encoders (items/s), run on demand.

    python benchmarks/bench_features.py --threads 1 --items 256
    python benchmarks/bench_features.py --device cuda --items 4096   # on a GPU

Uses the demo items (results/demo/data/items.parquet and its images) when
present, otherwise a generated shop. Prints one table; the ``ratio`` column
is each encoder's throughput relative to the MiniLM sentence encoder measured
in the same run (the paper's text encoder for Baby/Clothing), so numbers from
different machines compare through the ratio. The published-.b reader is
also compared with a naive one-record-at-a-time reader in the same run.
CLIP uses random weights (the architecture, hence the cost, is the same).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def generated_shop(root: Path, n: int, size: int, seed: int) -> pd.DataFrame:
    """``n`` items with titles/descriptions and ``size`` px JPEGs under ``root/images``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(500)]
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        img.save(root / "images" / f"{i}.jpg")
        rows.append({"item_idx": i + 1, "item": f"B{i:09d}", "title": " ".join(rng.choice(words, 8)),
                     "description": " ".join(rng.choice(words, 60)), "categories": "Home > Kitchen",
                     "brand": "Acme", "image_url": f"images/{i}.jpg"})
    return pd.DataFrame(rows)


def load_items(args, tmp: Path) -> tuple[pd.DataFrame, Path, str]:
    demo = ROOT / "results" / "demo" / "data" / "items.parquet"
    if demo.exists() and not args.generated:
        items = pd.read_parquet(demo).sort_values("item_idx").head(args.items).reset_index(drop=True)
        return items, ROOT / "resources" / "downloads" / "demo", f"demo ({len(items)} items)"
    items = generated_shop(tmp, args.items, args.image_size, args.seed)
    return items, tmp, f"generated ({len(items)} items, {args.image_size}px images)"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_published(tmp: Path, n_records: int, n_wanted: int) -> list[tuple[str, int, float]]:
    from sgp4sr.features.published import PUBLISHED_DIM, read_published_features

    rng = np.random.default_rng(0)
    path = tmp / "image_features_Bench.b"
    asins = [f"B{i:09d}" for i in range(n_records)]
    with open(path, "wb") as fh:
        for start in range(0, n_records, 512):
            block = rng.standard_normal((min(512, n_records - start), PUBLISHED_DIM)).astype("<f4")
            for asin, vec in zip(asins[start:], block):
                fh.write(asin.encode())
                fh.write(vec.tobytes())
    wanted = {a: i + 1 for i, a in enumerate(rng.choice(asins, n_wanted, replace=False))}

    def naive():
        out = np.zeros((n_wanted + 1, PUBLISHED_DIM), np.float32)
        with open(path, "rb") as fh:
            while asin := fh.read(10):
                vec = np.frombuffer(fh.read(PUBLISHED_DIM * 4), "<f4")
                if (row := wanted.get(asin.decode())) is not None:
                    out[row] = vec

    def streamed():
        out = np.zeros((n_wanted + 1, PUBLISHED_DIM), np.float32)
        read_published_features(path, wanted, out, progress=False)

    # Alternate and keep the best of 3: the file sits in the page cache for both, and a
    # shared machine's load spikes hit one run, not the comparison.
    naive_s, streamed_s = float("inf"), float("inf")
    for _ in range(3):
        naive_s = min(naive_s, timed(naive))
        streamed_s = min(streamed_s, timed(streamed))
    return [("published .b, naive record loop", n_records, naive_s),
            ("published .b, chunked (ours)", n_records, streamed_s)]


def bench_encoders(args, items: pd.DataFrame, downloads: Path, tmp: Path, rows: list) -> np.ndarray:
    """Time each encoder on ``items`` (models loaded beforehand); returns the image features."""
    from sgp4sr.features.build import build_modality
    from sgp4sr.features.clip import load_clip
    from sgp4sr.features.images import fetch_images
    from sgp4sr.features.text import load_sentence_model

    common = {"device": args.device, "threads": args.threads, "progress": False, "seed": args.seed}
    # Load each model once before timing: the table is about encoding, not start-up.
    load_sentence_model("sentence-transformers/all-MiniLM-L6-v2", args.device)
    load_clip("ViT-B-32", None, seed=args.seed, device=args.device)
    # Fill the image cache first: time decoding + encoding, not copying.
    fetch_images(items, downloads, tmp / "cache", progress=False)
    image_args = {"download_dir": downloads, "cache_dir": tmp / "cache"}
    results = {}
    for name, cfg, extra in [
        ("sentence MiniLM-L6 (text)", {"encoder": "sentence"}, {}),
        ("CLIP ViT-B/32 text", {"encoder": "clip", "input": "text", "pretrained": None}, {}),
        ("CLIP ViT-B/32 image (decode+encode)", {"encoder": "clip", "pretrained": None}, image_args),
    ]:
        cfg = {**cfg, "batch_size": args.batch_size}
        seconds = timed(lambda: results.__setitem__(name, build_modality(items, "m", cfg, **common, **extra)))
        rows.append((name, len(items), seconds))
    return results["CLIP ViT-B/32 image (decode+encode)"][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (keep 1 on a shared machine)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--records", type=int, default=4000, help=".b records to stream (16 KB each)")
    parser.add_argument("--generated", action="store_true", help="ignore the demo data even when present")
    parser.add_argument("--no-encoders", action="store_true", help="only the noise and .b reader rows (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    from sgp4sr.features.noise import add_modality_noise

    rows: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        items, downloads, what = load_items(args, tmp)
        if args.no_encoders:
            what += ", encoders skipped"
            feats = np.random.default_rng(args.seed).standard_normal((len(items) + 1, 512)).astype(np.float32)
        else:
            feats = bench_encoders(args, items, downloads, tmp, rows)
        big = np.tile(feats, (max(1, 20000 // len(feats)), 1))
        big[0] = 0
        rows.append(("noise ratio 0.3 (rows copied)", len(big) - 1,
                     timed(lambda: add_modality_noise(big, 0.3, 0, "image"))))
        # ~2% of the records wanted, as for Clothing (23 k of ~1.5 M products).
        rows += bench_published(tmp, args.records, max(1, args.records // 50))

    ref = rows[0][1] / rows[0][2] if not args.no_encoders else None
    naive = next(r for r in rows if "naive" in r[0])
    print(f"\nfeature encoders on {what}; device {args.device}, torch threads {args.threads}, "
          f"batch {args.batch_size}\n")
    print(f"{'step':40s} {'items':>7s} {'seconds':>9s} {'items/s':>10s} {'ratio':>12s}")
    for name, count, seconds in rows:
        rate = count / seconds
        if name.startswith("published"):
            ratio = f"{rate / (naive[1] / naive[2]):.2f}x naive"
        elif ref is None:
            ratio = "-"
        else:
            ratio = f"{rate / ref:.3f}x MiniLM"
        print(f"{name:40s} {count:7d} {seconds:9.2f} {rate:10.1f} {ratio:>12s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
