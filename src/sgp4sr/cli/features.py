"""``sgp4sr features encode|manifest|noise|iisan-cache``: the features stage's commands.

The rules in workflow/rules/features.smk call exactly these; each takes
explicit paths so a stage run by hand reads and writes the same files.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("sgp4sr.features")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("features", help="item feature matrices, manifest and noise variants")
    sub = parser.add_subparsers(dest="step", metavar="STEP")
    sub.required = True

    enc = sub.add_parser("encode", help="encode one modality of a dataset's items")
    enc.add_argument("--items", required=True, help="results/<ds>/data/items.parquet")
    enc.add_argument("--modality", required=True, help="the modality's name (output naming, noise seeds)")
    enc.add_argument("--config", required=True, type=json.loads,
                     help="JSON of datasets.<ds>.modalities.<name> (defaults are filled in)")
    enc.add_argument("--out", required=True, help="<modality>.npy")
    enc.add_argument("--manifest-out", required=True, help="<modality>.manifest.parquet")
    enc.add_argument("--source-file", help="the .b file (published) or .npy (benchmark); empty for the encoders")
    enc.add_argument("--download-dir", default=".", help="raw download folder; relative image paths start here")
    enc.add_argument("--cache-dir", default="images", help="image cache folder")
    enc.add_argument("--seed", type=int, default=0, help="seed for random CLIP weights (pretrained: null)")
    enc.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    enc.add_argument("--threads", type=int, default=1, help="torch and image-decoding threads")
    enc.add_argument("--no-progress", action="store_true")
    enc.set_defaults(func=run_encode)

    man = sub.add_parser("manifest", help="merge per-modality manifests into manifest.parquet")
    man.add_argument("inputs", nargs="+", help="<modality>.manifest.parquet files")
    man.add_argument("--out", required=True)
    man.set_defaults(func=run_manifest)

    noise = sub.add_parser("noise", help="write <modality>@noise<ratio>.npy")
    noise.add_argument("--features", required=True, help="the clean <modality>.npy")
    noise.add_argument("--modality", required=True)
    noise.add_argument("--ratio", required=True, help="share of items to corrupt, written with %%g (0.1)")
    noise.add_argument("--seed", type=int, required=True)
    noise.add_argument("--out", required=True)
    noise.set_defaults(func=run_noise)

    iisan = sub.add_parser("iisan-cache", help="IISAN's cache of the frozen encoders' per-layer hidden states")
    iisan.add_argument("--items", required=True, help="results/<ds>/data/items.parquet")
    iisan.add_argument("--images", required=True, help="the image cache folder, resources/images/<ds>")
    iisan.add_argument("--downloads", default=".", help="the dataset's raw folder (for relative image paths)")
    iisan.add_argument("--out", required=True, help="the .npz to write (results/<ds>/features/iisan_hidden.npz)")
    iisan.add_argument("--text-model", default=None, help="sentence-transformers model (default: MiniLM-L6)")
    iisan.add_argument("--image-model", default=None, help="open_clip model (default: ViT-B-32)")
    iisan.add_argument("--image-pretrained", default=None, help="open_clip tag; omit for random weights")
    iisan.add_argument("--seed", type=int, default=0, help="seed of random CLIP weights")
    iisan.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    iisan.set_defaults(func=run_iisan_cache)


def run_encode(args: argparse.Namespace) -> int:
    import torch

    from sgp4sr.features.build import build_modality, read_items, write_outputs

    torch.set_num_threads(max(1, args.threads))
    items = read_items(args.items)
    matrix, manifest = build_modality(
        items, args.modality, args.config, seed=args.seed, download_dir=args.download_dir,
        cache_dir=args.cache_dir, source_file=args.source_file or None, device=args.device,
        threads=args.threads, progress=not args.no_progress,
    )
    write_outputs(matrix, manifest, args.out, args.manifest_out)
    log.info("%s: wrote %s %s and %s", args.modality, args.out, matrix.shape, args.manifest_out)
    return 0


def run_manifest(args: argparse.Namespace) -> int:
    import pandas as pd

    from sgp4sr.features.build import merge_manifests
    from sgp4sr.io import write_parquet

    merged = merge_manifests([pd.read_parquet(p) for p in args.inputs])
    write_parquet(args.out, merged)
    log.info("wrote %s (%d items, %d modalities)", args.out, len(merged), len(args.inputs))
    return 0


def run_noise(args: argparse.Namespace) -> int:
    import numpy as np

    from sgp4sr.features.noise import add_modality_noise, parse_ratio
    from sgp4sr.io import save_npy

    ratio = parse_ratio(args.ratio)
    features = np.load(Path(args.features), allow_pickle=False)
    noisy, chosen = add_modality_noise(features, ratio, args.seed, args.modality, source=args.features)
    save_npy(args.out, noisy)
    log.info("%s: %d of %d items got another item's features (ratio %s, seed %d) -> %s",
             args.modality, len(chosen), len(features) - 1, args.ratio, args.seed, args.out)
    return 0


def run_iisan_cache(args: argparse.Namespace) -> int:
    from sgp4sr.features.iisan_cache import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, build_hidden_state_cache

    build_hidden_state_cache(args.items, args.out, images_dir=args.images, download_dir=args.downloads,
                             text_model=args.text_model or DEFAULT_TEXT_MODEL,
                             image_model=args.image_model or DEFAULT_IMAGE_MODEL,
                             image_pretrained=args.image_pretrained, seed=args.seed, device=args.device)
    return 0
