"""A tiny shop for the features tests: items.parquet plus images drawn with PIL.

Items fall into two categories with different words and image colours;
the last few items carry the failure cases the encoders must survive
(a corrupt file, a placeholder-sized image, a missing file, no URL).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CATEGORY_WORDS = {
    "Kitchen": ("stainless steel frying pan", "ceramic coffee mug", "chef knife with wooden handle",
                "nonstick baking sheet"),
    "Garden": ("garden hose with spray nozzle", "pruning shears for roses", "flower seeds for spring planting",
               "lawn mower replacement blade"),
}
COLOURS = {"Kitchen": (200, 40, 40), "Garden": (40, 160, 60)}


def make_items(root: Path, *, image_size: int = 32, failures: bool = True, per_category: int = 4) -> pd.DataFrame:
    """Write ``root/downloads/images/*.jpg`` and ``root/items.parquet``; return the items frame.

    ``per_category`` (at most 4) keeps the CLIP tests, whose cost is per image, small.
    """
    from PIL import Image, ImageDraw

    images = root / "downloads" / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for cat, titles in CATEGORY_WORDS.items():
        for j, title in enumerate(titles[:per_category]):
            asin = f"B{len(rows):09d}"
            img = Image.new("RGB", (image_size, image_size), COLOURS[cat])
            ImageDraw.Draw(img).ellipse([4 + j, 4 + j, image_size - 4, image_size - 4], fill=(250, 250, 250 - 40 * j))
            img.save(images / f"{asin}.jpg", quality=90)
            rows.append({"item": asin, "title": title, "description": f"A {title} for the {cat.lower()}.",
                         "categories": f"Home > {cat}", "brand": f"{cat}Co", "image_url": f"images/{asin}.jpg"})
    if failures:
        bad = [("corrupt", "images/corrupt.jpg"), ("tiny", "images/tiny.png"), ("gone", "images/gone.jpg"),
               ("nourl", "")]
        (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        Image.new("RGB", (2, 2), (1, 2, 3)).save(images / "tiny.png")
        for name, url in bad:
            rows.append({"item": f"X{name}", "title": f"{name} item", "description": "", "categories": "",
                         "brand": "", "image_url": url})
    items = pd.DataFrame(rows)
    items.insert(0, "item_idx", np.arange(1, len(items) + 1, dtype=np.int32))
    items.to_parquet(root / "items.parquet", index=False)
    return items


def random_features(n_items: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    """Distinct random rows with a zero padding row (so every replaced row visibly changes)."""
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((n_items, dim)).astype(np.float32)
    feats[0] = 0
    return feats
