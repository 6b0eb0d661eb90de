"""A seeded synthetic shop in the raw formats of the Amazon 2014 download.

Every real stage (parse, k-core, split, image decoding, encoders, graphs,
training) runs on it offline. The planted structure is what the paper's
model is meant to exploit and what an ID-only model can only partly learn:

* latent categories, each with sub-topics, a word vocabulary, brands, a
  colour and a shape; titles, descriptions and images follow them;
* users with 1-3 interests; next items stay in the current category with
  probability ``transition_coherence`` (and mostly in the same sub-topic),
  otherwise jump to another interest;
* optionally (``complement_rate`` > 0) item-level structure: every item has
  three fixed "complements" in its category (any sub-topic), and with that
  probability the next item is one of the current item's complements, the
  bought-together pairs that co-occurrence graphs capture;
* long-tail popularity (Zipf exponent ``popularity_exponent`` within a
  category), so many items are seen rarely and their features matter more
  than their ID embedding; the larger the exponent, the more an ID-only
  model gains by ranking a category's popular items first;
* the paper's modal noise: irrelevant words (``irrelevant_word_rate``) and
  image clutter (``image_clutter_rate``) inside a modality, and items whose
  image shows another category (``wrong_image_rate``).

Outputs in ``out_dir``: ``reviews_<Cat>_5.json.gz`` and ``meta_<Cat>.json.gz``
(one Python-literal dict per line, gzip mtime 0 so a seed gives identical
bytes), ``images/<asin>.jpg``, ``truth_<Cat>.csv`` (the latent item labels),
``truth_users_<Cat>.csv`` (each user's interests) and ``law_<Cat>.json`` (the
transition parameters): with them :func:`load_law` rebuilds the exact
next-item law, which the report's oracle row ranks by; no model reads them.
"""

from __future__ import annotations

import colorsys
import gzip
import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from sgp4sr.io import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "n_users": 3000,
    "n_items": 800,
    "n_categories": 8,
    "interests_per_user": [1, 3],
    "min_length": 5,
    "max_length": 30,
    "transition_coherence": 0.8,
    "irrelevant_word_rate": 0.2,
    "image_clutter_rate": 0.2,
    "wrong_image_rate": 0.1,
    "image_size": 64,
    "popularity_exponent": 0.9,
    "complement_rate": 0.0,
    "subtopic_progression": 0.0,
}
SUBTOPICS = 4  # per category; items of a sub-topic share words and an image pattern
SAME_SUBTOPIC = 0.7  # P(stay in the sub-topic | stay in the category)
COMPLEMENTS = 3  # fixed successors per item, used with probability ``complement_rate``
LENGTH_P = 0.2  # geometric tail of sequence lengths beyond min_length
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "bars", "star")
START_TIME = 1262304000  # 2010-01-01
DAY = 86400
_CONSONANTS = "bcdfghklmnprstvz"
_VOWELS = "aeiou"
FILLER = ("great", "value", "shipping", "ordered", "gift", "nice", "really", "quality", "price",
          "package", "arrived", "recommend", "bought", "works", "happy", "product", "fast", "item")


@dataclass
class _Category:
    name: str
    words: list[str]
    sub_words: list[list[str]]
    nouns: list[str]
    brands: list[str]
    hue: float
    shape: str


def _pseudo_words(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    """Pronounceable unique nonsense words, so no encoder has seen them tied to a category."""
    out: list[str] = []
    while len(out) < n:
        syllables = rng.integers(2, 4)
        word = "".join(_CONSONANTS[rng.integers(len(_CONSONANTS))] + _VOWELS[rng.integers(len(_VOWELS))]
                       for _ in range(syllables))
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


def _make_categories(rng: np.random.Generator, n: int) -> list[_Category]:
    taken: set[str] = set(FILLER)
    cats = []
    for c in range(n):
        cats.append(_Category(
            name=_pseudo_words(rng, 1, taken)[0].capitalize(),
            words=_pseudo_words(rng, 30, taken),
            sub_words=[_pseudo_words(rng, 6, taken) for _ in range(SUBTOPICS)],
            nouns=_pseudo_words(rng, 4, taken),
            brands=[w.capitalize() for w in _pseudo_words(rng, 3, taken)],
            hue=c / n,
            shape=SHAPES[c % len(SHAPES)],
        ))
    return cats


def _unique_ids(rng: np.random.Generator, n: int, prefix: str, length: int) -> list[str]:
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        token = prefix + "".join(rng.choice(alphabet, length))
        if token not in seen:
            seen.add(token)
            out.append(token)
    return out


def _noisy_words(rng: np.random.Generator, words: list[str], rate: float, cats: list[_Category], own: int) -> list[str]:
    """Replace each word with prob ``rate`` by filler or another category's word."""
    hit = np.flatnonzero(rng.random(len(words)) < rate)
    if not len(hit):
        return words
    out = list(words)
    for j in hit:
        if rng.random() < 0.5 or len(cats) == 1:
            out[j] = FILLER[rng.integers(len(FILLER))]
        else:
            other = cats[(own + 1 + int(rng.integers(len(cats) - 1))) % len(cats)]
            out[j] = other.words[rng.integers(len(other.words))]
    return out


def _colour(hue: float, rng: np.random.Generator, sat: float = 0.75, val: float = 0.85) -> tuple[int, int, int]:
    h = (hue + rng.normal(0, 0.02)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, min(1, sat + rng.normal(0, 0.05)), min(1, val + rng.normal(0, 0.05)))
    return int(r * 255), int(g * 255), int(b * 255)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: tuple) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape == "cross":
        w = r / 3
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, int(r / 3)))
    elif shape == "bars":
        for k in range(3):
            x0 = cx - r + k * (2 * r / 3)
            draw.rectangle((x0, cy - r, x0 + r / 3, cy + r), fill=fill)
    else:  # star
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r / 2.5
            ang = math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy - rad * math.sin(ang)))
        draw.polygon(pts, fill=fill)


def _image(rng: np.random.Generator, cat: _Category, sub: int, size: int, clutter: bool) -> bytes:
    """JPEG bytes: the category's shape in its colour; the sub-topic sets a corner mark."""
    bg = tuple(int(v) for v in rng.integers(225, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    r = size * rng.uniform(0.22, 0.32)
    cx, cy = size / 2 + rng.normal(0, size * 0.05), size / 2 + rng.normal(0, size * 0.05)
    _draw_shape(draw, cat.shape, cx, cy, r, _colour(cat.hue, rng))
    mark = size * 0.12
    corner = [(mark, mark), (size - mark, mark), (mark, size - mark), (size - mark, size - mark)][sub % 4]
    draw.ellipse((corner[0] - mark / 2, corner[1] - mark / 2, corner[0] + mark / 2, corner[1] + mark / 2),
                 fill=_colour((cat.hue + 0.5) % 1, rng, val=0.5))
    if clutter:
        for _ in range(int(rng.integers(3, 7))):
            _draw_shape(draw, SHAPES[rng.integers(len(SHAPES))], rng.uniform(0, size), rng.uniform(0, size),
                        size * rng.uniform(0.08, 0.2), _colour(rng.random(), rng))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _write_gz_lines(path: Path, lines: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(("\n".join(lines) + "\n").encode("utf-8"))


def _complements(rng: np.random.Generator, item_cat: np.ndarray) -> list[np.ndarray]:
    """``COMPLEMENTS`` distinct other items of the same category per item (fewer in a tiny category)."""
    members = {int(c): np.flatnonzero(item_cat == c) for c in np.unique(item_cat)}
    out = []
    for i, c in enumerate(item_cat):
        same = members[int(c)]
        same = same[same != i]
        out.append(rng.choice(same, size=min(COMPLEMENTS, len(same)), replace=False))
    return out


@dataclass
class NextItemLaw:
    """The demo's true next-item distribution: what the sampler draws from and what the oracle ranks by.

    Given the user's last item ``i`` (category ``c``, sub-topic ``s``), the items seen so far and the user's
    interests, the next item is

    * with probability ``complement_rate``, one of ``i``'s unseen complements, uniformly;
    * otherwise, with probability ``transition_coherence``, an item of ``c``: with probability
      ``same_subtopic`` of sub-topic ``s + 1`` (probability ``subtopic_progression``, the ordered
      progression that text and image both show) or ``s`` (the rest), else of any sub-topic;
    * otherwise an item of another of the user's interests (any category for a one-interest user);

    each pool drawn by popularity among its unseen items (an empty pool falls back to its category's
    unseen items; an empty part gives its mass to the others). The first item is drawn from the
    first interest by popularity.
    """

    item_cat: np.ndarray
    item_sub: np.ndarray
    pop: np.ndarray
    n_cats: int
    transition_coherence: float
    subtopic_progression: float = 0.0
    complement_rate: float = 0.0
    same_subtopic: float = SAME_SUBTOPIC
    complements: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        cats = np.arange(self.n_cats)[:, None]
        self._in_cat = self.item_cat[None, :] == cats  # (C, n)
        self._in_sub = [(self.item_cat == c)[None, :] & (self.item_sub[None, :] == np.arange(SUBTOPICS)[:, None])
                        for c in range(self.n_cats)]  # per category (S, n)

    def _pool(self, mask: np.ndarray, unseen: np.ndarray) -> np.ndarray | None:
        w = self.pop * (mask & unseen)
        total = w.sum()
        return w / total if total > 0 else None

    def _cat_pool(self, c: int, sub: int | None, unseen: np.ndarray) -> np.ndarray | None:
        if sub is not None:
            pool = self._pool(self._in_sub[c][sub % SUBTOPICS], unseen)
            if pool is not None:
                return pool
        return self._pool(self._in_cat[c], unseen)

    @staticmethod
    def _mix(parts: list[tuple[float, np.ndarray | None]]) -> np.ndarray | None:
        kept = [(w, p) for w, p in parts if p is not None and w > 0]
        total = sum(w for w, _ in kept)
        if not kept or total <= 0:
            return None
        return sum(w * p for w, p in kept) / total

    def distribution(self, last: int | None, interests: np.ndarray, seen: np.ndarray) -> np.ndarray | None:
        """P(next item) over the item positions (n,), zero on ``seen`` (bool mask); None if nothing is left."""
        unseen = ~seen
        if last is None:
            return self._cat_pool(int(interests[0]), None, unseen)
        c, s = int(self.item_cat[last]), int(self.item_sub[last])
        subs = self._mix([(self.subtopic_progression, self._cat_pool(c, s + 1, unseen)),
                          (1.0 - self.subtopic_progression, self._cat_pool(c, s, unseen))])
        stay = self._mix([(self.same_subtopic, subs), (1.0 - self.same_subtopic, self._cat_pool(c, None, unseen))])
        others = [int(o) for o in interests if int(o) != c] or list(range(self.n_cats))
        jump = self._mix([(1.0, self._cat_pool(o, None, unseen)) for o in others])
        rest = self._mix([(self.transition_coherence, stay), (1.0 - self.transition_coherence, jump)])
        comp = None
        if self.complement_rate > 0 and self.complements is not None:
            fresh = [int(j) for j in self.complements[last] if unseen[j]]
            if fresh:
                comp = np.zeros(len(self.pop))
                comp[fresh] = 1.0 / len(fresh)
        return self._mix([(self.complement_rate, comp), (1.0 - self.complement_rate, rest)])


def _sequences(rng: np.random.Generator, cfg: Mapping[str, Any], law: NextItemLaw,
               ) -> tuple[list[list[int]], list[np.ndarray]]:
    """Per user a list of distinct item positions drawn from ``law``, and the user's interests."""
    cat_weight = rng.dirichlet(np.full(law.n_cats, 3.0))
    lo, hi = cfg["interests_per_user"]
    n = len(law.pop)
    seqs, all_interests = [], []
    for _ in range(cfg["n_users"]):
        k = int(min(law.n_cats, rng.integers(lo, hi + 1)))
        interests = rng.choice(law.n_cats, size=k, replace=False, p=cat_weight)
        length = int(min(cfg["max_length"], cfg["min_length"] + rng.geometric(LENGTH_P) - 1))
        seq: list[int] = []
        seen = np.zeros(n, dtype=bool)
        for _step in range(length):
            p = law.distribution(seq[-1] if seq else None, interests, seen)
            if p is None:
                break
            choice = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"))
            choice = min(choice, n - 1)
            seq.append(choice)
            seen[choice] = True
        seqs.append(seq)
        all_interests.append(interests)
    return seqs, all_interests


def _reviews(rng: np.random.Generator, cfg: Mapping[str, Any], cats: list[_Category], asins: list[str],
             item_cat: np.ndarray, reviewers: list[str], seqs: list[list[int]]) -> list[str]:
    """Review lines in user order, chronological, with day-resolution times (ties happen, as in Amazon)."""
    n = sum(len(s) for s in seqs)
    gaps = rng.choice([0, 1, 2, 3, 7, 14, 30, 60], size=n, p=[0.05, 0.2, 0.2, 0.15, 0.15, 0.1, 0.1, 0.05]) * DAY
    ratings = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], size=n, p=[0.04, 0.05, 0.11, 0.25, 0.55])
    n_words = rng.integers(6, 15, size=n)
    lines, k = [], 0
    for user, seq in zip(reviewers, seqs):
        t = START_TIME + int(rng.integers(0, 4 * 365)) * DAY
        for pos in seq:
            t += int(gaps[k])
            cat = cats[item_cat[pos]]
            words = [cat.words[j] for j in rng.integers(len(cat.words), size=n_words[k])]
            lines.append(repr({
                "reviewerID": user,
                "asin": asins[pos],
                "reviewerName": f"Shopper {user[-4:]}",
                "helpful": [0, 0],
                "reviewText": " ".join(_noisy_words(rng, words, cfg["irrelevant_word_rate"], cats, item_cat[pos])),
                "overall": float(ratings[k]),
                "summary": f"{FILLER[rng.integers(len(FILLER))]} {FILLER[rng.integers(len(FILLER))]}",
                "unixReviewTime": t,
                "reviewTime": time.strftime("%m %d, %Y", time.gmtime(t)),
            }))
            k += 1
    return lines


def generate_demo(out_dir: str | Path, cfg: Mapping[str, Any] | None, seed: int, category: str = "Demo") -> dict:
    """Write the demo shop's raw files into ``out_dir``; return a small summary."""
    cfg = {**DEFAULTS, **(cfg or {})}
    if cfg["min_length"] > cfg["max_length"]:
        raise ValueError(f"demo.min_length {cfg['min_length']} > demo.max_length {cfg['max_length']}")
    lo, hi = cfg["interests_per_user"]
    if lo > hi:
        raise ValueError(f"demo.interests_per_user [{lo}, {hi}] must be increasing")
    out_dir = Path(out_dir)
    # independent streams: the items (text, images) do not change with the user settings
    rng, seq_rng, review_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    n_items, n_cats = int(cfg["n_items"]), int(cfg["n_categories"])
    cats = _make_categories(rng, n_cats)
    asins = _unique_ids(rng, n_items, "B00", 7)
    item_cat = rng.integers(n_cats, size=n_items)
    item_sub = rng.integers(SUBTOPICS, size=n_items)
    pop = np.empty(n_items)
    for c in range(n_cats):
        idx = np.flatnonzero(item_cat == c)
        pop[idx] = (1.0 + rng.permutation(len(idx))) ** -float(cfg["popularity_exponent"])

    complements = _complements(seq_rng, item_cat) if cfg["complement_rate"] > 0 else None
    law = NextItemLaw(item_cat, item_sub, pop, n_cats, float(cfg["transition_coherence"]),
                      float(cfg["subtopic_progression"]), float(cfg["complement_rate"]), complements=complements)
    seqs, interests = _sequences(seq_rng, cfg, law)
    reviewers = _unique_ids(review_rng, len(seqs), "A", 13)
    review_lines = _reviews(review_rng, cfg, cats, asins, item_cat, reviewers, seqs)

    meta_lines, truth = [], []
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i, asin in enumerate(asins):
        c, s = int(item_cat[i]), int(item_sub[i])
        cat = cats[c]
        title_words = [cat.brands[rng.integers(3)], *rng.choice(cat.sub_words[s], 2), *rng.choice(cat.words, 2),
                       cat.nouns[rng.integers(len(cat.nouns))]]
        desc_words = [*rng.choice(cat.words, int(rng.integers(8, 16))), *rng.choice(cat.sub_words[s], 3)]
        rate = cfg["irrelevant_word_rate"]
        wrong = bool(rng.random() < cfg["wrong_image_rate"]) and n_cats > 1
        shown = (c + 1 + int(rng.integers(n_cats - 1))) % n_cats if wrong else c
        clutter = bool(rng.random() < cfg["image_clutter_rate"])
        meta_lines.append(repr({
            "asin": asin,
            "title": " ".join(_noisy_words(rng, title_words, rate, cats, c)).title(),
            "description": " ".join(_noisy_words(rng, desc_words, rate, cats, c)).capitalize() + ".",
            "price": round(float(rng.uniform(3, 80)), 2),
            "imUrl": f"images/{asin}.jpg",
            "categories": [[category, cat.name, cat.sub_words[s][0].capitalize()]],
            "brand": cat.brands[rng.integers(3)],
            "salesRank": {category: int(1 + rng.integers(100000))},
        }))
        data = _image(rng, cats[shown], s, int(cfg["image_size"]), clutter)
        with atomic_path(images / f"{asin}.jpg") as tmp:
            tmp.write_bytes(data)
        truth.append({"asin": asin, "category": c, "subtopic": s, "image_category": shown,
                      "wrong_image": wrong, "cluttered": clutter, "popularity": pop[i],
                      "complements": " ".join(asins[j] for j in complements[i]) if complements else ""})

    _write_gz_lines(out_dir / f"reviews_{category}_5.json.gz", review_lines)
    _write_gz_lines(out_dir / f"meta_{category}.json.gz", meta_lines)
    with atomic_path(out_dir / f"truth_{category}.csv") as tmp:
        pd.DataFrame(truth).to_csv(tmp, index=False)
    with atomic_path(out_dir / f"truth_users_{category}.csv") as tmp:
        pd.DataFrame({"reviewerID": reviewers,
                      "interests": [" ".join(str(int(c)) for c in chosen) for chosen in interests]}).to_csv(
            tmp, index=False)
    write_json(out_dir / f"law_{category}.json", {
        "n_categories": n_cats, "transition_coherence": law.transition_coherence,
        "subtopic_progression": law.subtopic_progression, "complement_rate": law.complement_rate,
        "same_subtopic": law.same_subtopic})
    summary = {"users": len(seqs), "items": n_items, "reviews": len(review_lines),
               "categories": [c.name for c in cats]}
    log.info("demo shop in %s: %d users, %d items, %d reviews", out_dir, len(seqs), n_items, len(review_lines))
    return summary


def truth_files(folder: str | Path, category: str) -> dict[str, Path]:
    """The generator's truth files in ``folder`` (see the module docstring)."""
    folder = Path(folder)
    return {"items": folder / f"truth_{category}.csv", "users": folder / f"truth_users_{category}.csv",
            "law": folder / f"law_{category}.json"}


def load_law(folder: str | Path, category: str) -> tuple[NextItemLaw, list[str], dict[str, np.ndarray]]:
    """The next-item law of a generated shop, its items' asins (law positions) and each reviewer's interests."""
    files = truth_files(folder, category)
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"demo truth file(s) missing: {', '.join(missing)} (regenerate the demo data)")
    items = pd.read_csv(files["items"], keep_default_na=False)
    params = read_json(files["law"])
    position = {asin: i for i, asin in enumerate(items["asin"])}
    complements = None
    if params["complement_rate"] > 0:
        complements = [np.array([position[a] for a in str(text).split()], dtype=np.int64)
                       for text in items["complements"]]
    law = NextItemLaw(items["category"].to_numpy(np.int64), items["subtopic"].to_numpy(np.int64),
                      items["popularity"].to_numpy(np.float64), int(params["n_categories"]),
                      float(params["transition_coherence"]), float(params["subtopic_progression"]),
                      float(params["complement_rate"]), float(params["same_subtopic"]), complements)
    users = pd.read_csv(files["users"], keep_default_na=False, dtype=str)
    interests = {u: np.array([int(c) for c in text.split()], dtype=np.int64)
                 for u, text in zip(users["reviewerID"], users["interests"])}
    return law, list(items["asin"]), interests
