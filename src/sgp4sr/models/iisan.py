"""IISAN (Fu et al., SIGIR'24): decoupled side adapters on frozen text and image encoders.

The frozen encoders run once: the per-layer hidden states of every item's text
(MiniLM through sentence-transformers) and image (CLIP ViT through open_clip)
are cached in one file. Three side networks of small adapters climb those
states every other layer: an intra-modal one per modality, and an inter-modal
one fed by a gated mix of both. Their outputs, concatenated and projected,
are the item vectors; a causal Transformer over them encodes the user.
Only the adapters, gates, projections and the user encoder are trained.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sgp4sr.features.iisan_cache import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL
from sgp4sr.models.base import Batch, ModelContext, SequentialRecommender, masked_cross_entropy
from sgp4sr.models.layers import causal_padding_mask
from sgp4sr.models.mm_blocks import EvalTableCache, PostLNEncoder, select_targets, start_positions
from sgp4sr.models.registry import register

log = logging.getLogger(__name__)



def side_layers(n_states: int, count: int) -> list[int]:
    """``count`` evenly spaced hidden-state indices from 0 to ``n_states - 1`` (every other layer
    of a 13-state BERT/ViT gives the original's 0, 2, ..., 12)."""
    if count == 1:
        return [n_states - 1]
    return [round(i * (n_states - 1) / (count - 1)) for i in range(count)]


# ---- side networks --------------------------------------------------------------------------------
class Adapter(nn.Module):
    """``x + up(act(down(x)))``, normal(0, 0.01) weights and zero biases (IISAN's AdapterBlock)."""

    def __init__(self, width: int, bottleneck: int, activation: str) -> None:
        super().__init__()
        self.down, self.up = nn.Linear(width, bottleneck), nn.Linear(bottleneck, width)
        self.act = nn.GELU() if activation == "gelu" else nn.ReLU()
        for lin in (self.down, self.up):
            nn.init.normal_(lin.weight, std=1e-2)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class IntraSAN(nn.Module):
    """One modality's side network: ``s = A_k(g_k h_k + (1 - g_k) s)``, ``g_k = sigmoid(p_k / 0.1)``."""

    def __init__(self, width: int, steps: int, bottleneck: int, activation: str, out: int) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(Adapter(width, bottleneck, activation) for _ in range(steps))
        self.gates = nn.Parameter(torch.zeros(steps))
        self.fc, self.down = nn.Linear(width, width), nn.Linear(width, out)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        side = torch.zeros_like(states[:, 0])
        for k, adapter in enumerate(self.adapters):
            g = torch.sigmoid(self.gates[k] / 0.1)
            side = adapter(g * states[:, k] + (1 - g) * side)
        return self.down(self.fc(side))


class InterSAN(nn.Module):
    """The inter-modal side network: ``s = A_k(s + g_k P(h^img_k) + (1 - g_k) h^text_k)``."""

    def __init__(self, text_width: int, image_width: int, steps: int, bottleneck: int, activation: str,
                 out: int) -> None:
        super().__init__()
        self.align = nn.Identity() if image_width == text_width else nn.Linear(image_width, text_width)
        self.adapters = nn.ModuleList(Adapter(text_width, bottleneck, activation) for _ in range(steps))
        self.gates = nn.Parameter(torch.zeros(steps))
        self.fc, self.down = nn.Linear(text_width, text_width), nn.Linear(text_width, out)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        side = torch.zeros_like(text[:, 0])
        for k, adapter in enumerate(self.adapters):
            g = torch.sigmoid(self.gates[k] / 0.1)
            side = adapter(side + g * self.align(image[:, k]) + (1 - g) * text[:, k])
        return self.down(self.fc(side))


# ---- the recommender -----------------------------------------------------------------------------
@register("iisan")
class IISAN(EvalTableCache, SequentialRecommender):
    """IISAN (cached variant) on the configured MiniLM text and CLIP image encoders.

    Faithful to the paper and GAIR-Lab/IISAN (``Code_Cached/model``,
    ``scripts/run_IISAN.py``): frozen backbones whose hidden states are cached
    once; side networks of bottleneck adapters (``x + up(act(down x))``, size 64,
    ReLU, normal(0, 0.01) init) on every other hidden state, embeddings included
    (LayerDrop); learnable gates ``sigmoid(p / 0.1)`` starting at 0.5; intra-modal
    SANs for text and image and an inter-modal SAN fed by both; ``fc`` and down
    projections, ``Linear(3d, d)`` fusion into the item vector; a causal post-LN
    Transformer user encoder (``LN(x + pos)``, ReLU FFN of width ``4d``, eps
    1e-6, 2 blocks, 2 heads, dropout 0.1); ``d = 64``.

    Deviations (original -> here, why):

    * Backbones: BERT-base and ViT-base [CLS] states (13 each); here the
      configured MiniLM (7 states, each mask-mean pooled, as MiniLM pools) and
      CLIP ViT-B/32 (13 class-token states). With unequal depths the SANs use
      ``side_steps`` evenly spaced states of each (default: half the shallower
      depth, rounded up; BERT/ViT gives the original 0, 2, ..., 12); with
      unequal widths the inter SAN maps the image states to the text width with
      a learned linear layer (identity when the widths match).
    * Loss: the original trains with in-batch softmax over the batch's items
      corrected by log-popularity; here the engine's full softmax over all items
      (the item tower runs on every item each step), as for every baseline.
    * One learning rate for adapters and user encoder (the original uses 1e-4
      for adapters, 2e-4 for the rest); attention projections carry biases.
    * Positions counted from the oldest real item (causal one-pass form exact).
    """

    requires = ()  # reads its own cache of hidden states, not the feature matrices

    def __init__(self, ctx: ModelContext, hidden_size: int = 64, layers: int = 2, heads: int = 2,
                 dropout: float = 0.1, adapter_size: int = 64, activation: str = "relu",
                 side_steps: int | None = None, hidden_states: str | None = None, items: str | None = None,
                 images_dir: str | None = None, download_dir: str = ".",
                 text_model: str = DEFAULT_TEXT_MODEL, image_model: str = DEFAULT_IMAGE_MODEL,
                 image_pretrained: str | None = None, encoder_seed: int = 0, init_std: float = 0.02) -> None:
        super().__init__(ctx)
        cache = hidden_states or ctx.extra.get("iisan_hidden_states")
        if cache is None:
            raise ValueError("iisan needs `hidden_states`: the .npz cache of the frozen encoders' hidden states "
                             "(it is built there from `items` and `images_dir` when missing)")
        if not Path(cache).exists():
            if items is None:
                raise FileNotFoundError(f"iisan: hidden-state cache {cache} does not exist and no `items` "
                                        "(items.parquet) was given to build it")
            from sgp4sr.features.iisan_cache import build_hidden_state_cache  # the features stage's builder

            build_hidden_state_cache(items, cache, images_dir=images_dir, download_dir=download_dir,
                                     text_model=text_model, image_model=image_model,
                                     image_pretrained=image_pretrained, seed=encoder_seed)
        with np.load(cache) as z:
            text, image = z["text"], z["image"]
        for name, arr in (("text", text), ("image", image)):
            if arr.ndim != 3 or arr.shape[0] != ctx.n_items:
                raise ValueError(f"{cache}: '{name}' hidden states have shape {arr.shape}, expected "
                                 f"({ctx.n_items}, layers, width) for this split; rebuild the cache")
        steps = side_steps or math.ceil(min(text.shape[1], image.shape[1]) / 2)
        self.text_layers = side_layers(text.shape[1], steps)
        self.image_layers = side_layers(image.shape[1], steps)
        self.register_buffer("text_states", torch.from_numpy(text[:, self.text_layers].astype(np.float32)),
                             persistent=False)
        self.register_buffer("image_states", torch.from_numpy(image[:, self.image_layers].astype(np.float32)),
                             persistent=False)
        tw, iw = text.shape[2], image.shape[2]
        self.text_san = IntraSAN(tw, steps, adapter_size, activation, hidden_size)
        self.image_san = IntraSAN(iw, steps, adapter_size, activation, hidden_size)
        self.inter_san = InterSAN(tw, iw, steps, adapter_size, activation, hidden_size)
        self.fusion = nn.Linear(3 * hidden_size, hidden_size)
        self.position_embedding = nn.Embedding(ctx.max_len, hidden_size)
        self.input_norm = nn.LayerNorm(hidden_size, eps=1e-6)
        self.input_dropout = nn.Dropout(dropout)
        self.encoder = PostLNEncoder(hidden_size, layers, heads, 4 * hidden_size, dropout, dropout, 1e-6, "relu")
        for module in (self.fusion, self.position_embedding, self.encoder):
            for m in module.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.xavier_normal_(m.weight)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

    def item_vectors(self) -> torch.Tensor:
        """(n_items, d): the three side networks over every item's cached states, fused."""
        text, image = self.text_states, self.image_states
        parts = [self.image_san(image), self.text_san(text), self.inter_san(text, image)]
        return self.fusion(torch.cat(parts, dim=-1))

    def encode(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        x = table[seq] + self.position_embedding(start_positions(seq, self.max_len))
        keep = (seq != 0).unsqueeze(-1).to(x.dtype)
        x = self.input_dropout(self.input_norm(x)) * keep
        return self.encoder(x, causal_padding_mask(seq), keep)

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        table = self.item_vectors()
        states, target = select_targets(self.encode(batch.seq, table), batch.target)
        return masked_cross_entropy(states @ table.T, target)

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        table = self.eval_table("items", self.item_vectors)
        return self.mask_padding_scores(self.encode(batch.seq, table)[:, -1] @ table.T)
