"""CLIP (open_clip) image and text encoders.

Pantry and Office in the paper use CLIP ViT-B/32 for both modalities. The
checkpoint tag (``pretrained``) comes from the config; ``None`` builds the
architecture with random weights from the config seed, which keeps the demo
and the tests offline and deterministic but yields features with no meaning.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from sgp4sr.features.text import pick_device

log = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "ViT-B-32"
RANDOM_WEIGHTS_WARNING = (
    "CLIP %s has NO pretrained weights (pretrained: null): random weights from seed %d. "
    "These features are meaningless outside tests and demos."
)


class ClipEncoder:
    """A loaded open_clip model with its image transform and tokenizer (state shared by both encoders)."""

    def __init__(self, model_name: str = DEFAULT_CLIP_MODEL, pretrained: str | None = None, *,
                 seed: int = 0, device: str = "auto") -> None:
        import open_clip
        import torch

        self.device = pick_device(device)
        if pretrained is None:
            log.warning(RANDOM_WEIGHTS_WARNING, model_name, seed)
        # Random initialisation draws from torch's global generator: seed it so
        # `pretrained: null` gives the same weights (and features) on every run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=self.device,
                precision="fp16" if self.device.startswith("cuda") else "fp32",
            )
        self.model = model.eval()
        self.preprocess: Callable = preprocess
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.dtype = next(self.model.parameters()).dtype

    @property
    def dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if getattr(self.model, "text_projection", None) is not None \
            else int(self.model.visual.output_dim)

    def encode_image_batches(self, batches: Iterable, total: int | None = None,
                             progress: bool = True) -> Iterator[np.ndarray]:
        """Encode an iterable of preprocessed image tensors ``(b, 3, H, W)``; yields float32 rows."""
        import torch

        with torch.inference_mode(), tqdm(total=total, unit="img", desc="clip images", disable=not progress) as bar:
            for pixels in batches:
                out = self.model.encode_image(pixels.to(self.device, self.dtype))
                bar.update(len(pixels))
                yield out.float().cpu().numpy()

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """Embed ``texts``; the tokenizer truncates each to the context length (77 tokens for ViT-B/32)."""
        import torch

        rows = []
        with torch.inference_mode():
            for start in tqdm(range(0, len(texts), batch_size), desc="clip texts", unit="batch",
                              disable=not progress):
                tokens = self.tokenizer(list(texts[start : start + batch_size])).to(self.device)
                rows.append(self.model.encode_text(tokens).float().cpu().numpy())
        if not rows:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(rows).astype(np.float32, copy=False)


@functools.lru_cache(maxsize=2)
def load_clip(model_name: str = DEFAULT_CLIP_MODEL, pretrained: str | None = None, *, seed: int = 0,
              device: str = "auto") -> ClipEncoder:
    """A cached :class:`ClipEncoder`: the image and text passes (and tests) share one loaded model."""
    return ClipEncoder(model_name, pretrained, seed=seed, device=device)
