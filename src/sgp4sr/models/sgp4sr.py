"""SGP4SR (AAAI'26): separated-modality guided user preference learning, spec §2–§6.

Three branches read the same sequence: an ID branch on co-occurrence-propagated
embeddings ``G_o = W @ E`` and one branch per modality on modal-graph
propagated embeddings ``G_m = A_m @ E``. Each modality branch also runs
Interest Centre Attention (:mod:`.sgp4sr_centres`) and mixes the user's
centre states into its output. All graph products are sparse x dense and are
recomputed once per step (``E`` is learned); the sequences then gather rows.
No ``n x n`` dense tensor exists and the memory of a step depends only on the
batch. Outputs are computed only at the positions that need them (the
targets in training, the last position at evaluation).
"""

from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple

import numpy as np
import torch
from torch import nn

from sgp4sr.layout import FUSED  # the virtual modality of ``wo_mul`` (built by sgp4sr.graphs)
from sgp4sr.models.base import (Batch, ModelContext, SequentialRecommender, masked_cross_entropy,
                                sparse_to_torch)
from sgp4sr.models.layers import SASRecLayer, causal_padding_mask, init_weights, position_ids
from sgp4sr.models.registry import register
from sgp4sr.models.sgp4sr_centres import CENTRE_MASKS, CentreOptions, OutputRows, centre_mix
from sgp4sr.variants import ABLATIONS

ID = "id"


class _Outputs(NamedTuple):
    """The forward pass at the output positions: fused ``u_s`` (R, d), ``u_m`` per modality, and the item
    tables they are scored against (``E`` and each modality's ``T_m``)."""

    u_s: torch.Tensor
    users: dict[str, torch.Tensor]
    emb: torch.Tensor
    tables: dict[str, torch.Tensor]


class _Stack(nn.Module):
    """Positions, optional input LayerNorm, dropout, ``L`` encoder layers and the output LayerNorm."""

    def __init__(self, hidden: int, layers: int, heads: int, dropout: float, max_len: int,
                 input_layernorm: bool) -> None:
        super().__init__()
        self.positions = nn.Embedding(max_len, hidden)
        self.input_norm = nn.LayerNorm(hidden, eps=1e-8) if input_layernorm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(SASRecLayer(hidden, heads, dropout) for _ in range(layers))
        self.last_norm = nn.LayerNorm(hidden, eps=1e-8)

    def embed(self, x: torch.Tensor, pos: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.input_norm(x + self.positions(pos))) * keep


@register("sgp4sr")
class SGP4SR(SequentialRecommender):
    """SGP4SR with every switch of the spec; defaults reproduce the released code minus its defects.

    Hyper-parameters (config ``models.sgp4sr``):

    * ``hidden_size`` (300), ``layers`` (2), ``heads`` (4), ``dropout`` (0.5: inputs, attention, FFN).
    * ``rho_v`` (0.1, the code's ``mb``): weight of the image branch in the fused
      output, score and loss; text gets ``1 - rho_v``.
    * ``beta`` (0.6; the paper's Eq. 17 uses 1): weight of the ID branch in the fused output.
    * ``alpha`` (1.0): weight of the centre mix in each modality output.
    * ``gumbel_tau`` (1.0): temperature of the centre selection (also divides the eval softmax's logits).
    * ``input_layernorm`` (False, the code; True = the paper's LayerNorm before input dropout).
    * ``shared_encoder`` (True, the code: one stack serves the ID branch, every
      modality branch and the centre attention; False = one stack per branch,
      the centres using their modality's stack, the fused output the ID stack's LayerNorm).
    * ``id_scale_power`` (0.9) / ``modal_scale_power`` (0.5): inputs are scaled by ``d**power``.
    * ``centre_scale_power`` (0.5, the code): the initial centres ``Z_m = C_m @ T_m``
      are scaled by ``d**power`` before selection and attention, like the
      modality inputs; 0 = unscaled (this project's earlier form).
    * ``centre_dropout`` (True, the code): the embedding dropout is drawn on the
      initial centres, one mask per output position (the code tiles them per
      example), before selection and attention; False = no dropout there.
    * ``centre_ffn_norm`` (False, the code: the centre states go from
      ``q + MHA(q, x, x)`` straight into the shared feed-forward and its
      residual); True = ``LN_f`` first, as in the sequence layer.
    * ``init_scheme`` ('sgp4sr_code', the code's ``_init_weights``; 'trunc_normal' =
      every linear map truncated normal, see :func:`~sgp4sr.models.layers.init_weights`).
    * ``centre_mask`` ('padding', the fix of §6.4; 'causal_bug' reproduces the released mask).
    * ``eval_gumbel`` (False, the fix of §6.5; True samples Gumbel noise at evaluation too).
    * ``modality_weights`` (None): per-modality weights overriding the defaults
      ``image: rho_v, text: 1 - rho_v, fused: 1``; needed for any other modality name.
    * ``centre_chunk`` (32768): the centre attention of an output position is ``k``
      rows of width ``d``, so a one-pass batch holds ``targets x k`` of them; above
      this many rows they are processed in chunks whose activations are
      recomputed in the backward pass (gradient checkpointing), bounding the
      memory to roughly ``24 x centre_chunk x d x 4`` bytes (~1 GB at d=300) for
      about a third more centre compute. 0 = never chunk (fastest, memory grows
      with batch x length x k; fine on a large GPU).
    * ``ablations`` (()): any of ``wo_coo`` (only changes the graph files the
      engine loads), ``wo_cgc`` (modality inputs, centres and modality scores use a
      learned linear map ``d_m -> d`` of the frozen features instead of ``A_m @ E``),
      ``wo_cip`` (no centres, ICA or mix), ``wo_mul`` (only the ``fused`` modality
      from the context, weight 1 — it replaces image and text, whose weights sum
      to 1 — so ``u_s = LN(x_fused + beta x_id)`` and ``y = u_s E^T + u_fused G_fused^T``),
      ``wo_c2c`` (= ``wo_cgc`` + ``wo_cip``).
    """

    requires = ("cooccurrence", "modal_graphs", "centres", "features")

    def __init__(self, ctx: ModelContext, *, hidden_size: int = 300, layers: int = 2, heads: int = 4,
                 dropout: float = 0.5, rho_v: float = 0.1, beta: float = 0.6, alpha: float = 1.0,
                 gumbel_tau: float = 1.0, input_layernorm: bool = False, shared_encoder: bool = True,
                 id_scale_power: float = 0.9, modal_scale_power: float = 0.5, centre_mask: str = "padding",
                 eval_gumbel: bool = False, modality_weights: Mapping[str, float] | None = None,
                 centre_chunk: int = 32768, centre_scale_power: float = 0.5, centre_dropout: bool = True,
                 centre_ffn_norm: bool = False, init_scheme: str = "sgp4sr_code",
                 ablations: Iterable[str] = ()) -> None:
        super().__init__(ctx)
        ablations = set(ablations)
        unknown = ablations - set(ABLATIONS)
        if unknown:
            raise ValueError(f"sgp4sr: unknown ablation(s) {sorted(unknown)}; known: {', '.join(ABLATIONS)}")
        if "wo_c2c" in ablations:
            ablations |= {"wo_cgc", "wo_cip"}
        if centre_mask not in CENTRE_MASKS:
            raise ValueError(f"sgp4sr: centre_mask must be one of {CENTRE_MASKS}, got {centre_mask!r}")
        self.ablations = tuple(sorted(ablations))
        self.use_graphs = "wo_cgc" not in ablations
        self.use_centres = "wo_cip" not in ablations
        self.hidden_size, self.n_layers = hidden_size, layers
        self.beta, self.alpha, self.tau = beta, alpha, gumbel_tau
        self.centre_mask, self.eval_gumbel, self.centre_chunk = centre_mask, eval_gumbel, max(0, int(centre_chunk))
        self.id_scale, self.modal_scale = hidden_size ** id_scale_power, hidden_size ** modal_scale_power
        self.centre_scale = hidden_size ** centre_scale_power
        self.centre_dropout, self.centre_ffn_norm = bool(centre_dropout), bool(centre_ffn_norm)
        self.modalities = _pick_modalities(ctx, self.use_graphs, "wo_mul" in ablations)
        defaults = {"image": rho_v, "text": 1.0 - rho_v, FUSED: 1.0, **dict(modality_weights or {})}
        missing = [m for m in self.modalities if m not in defaults]
        if missing:
            raise ValueError(f"sgp4sr: no weight for modality {missing}; set models.sgp4sr.modality_weights")
        self.weights = {m: float(defaults[m]) for m in self.modalities}

        n = ctx.n_items
        self.item_embedding = nn.Embedding(n, hidden_size, padding_idx=0)
        self.register_buffer("cooccurrence", _sparse(ctx.cooccurrence, (n, n), "cooccurrence"), persistent=False)
        self.feature_maps = nn.ModuleDict()
        for i, m in enumerate(self.modalities):
            if self.use_graphs:
                graph = _sparse(ctx.modal_graphs.get(m), (n, n), f"modal_graphs[{m!r}]")
                self.register_buffer(f"graph_{i}", graph, persistent=False)
            else:
                feats = _features(ctx, m)
                self.register_buffer(f"features_{i}", torch.from_numpy(feats), persistent=False)
                self.feature_maps[str(i)] = nn.Linear(feats.shape[1], hidden_size)
            if self.use_centres:
                centres = ctx.centres.get(m)
                k = None if centres is None else centres.shape[0]
                self.register_buffer(f"centres_{i}", _sparse(centres, (k, n), f"centres[{m!r}]"), persistent=False)
        names = [ID, *self.modalities]
        self.stacks = nn.ModuleDict({name: _Stack(hidden_size, layers, heads, dropout, ctx.max_len, input_layernorm)
                                     for name in (["shared"] if shared_encoder else names)})
        self.groups = [("shared", names)] if shared_encoder else [(name, [name]) for name in names]
        init_weights(self, scheme=init_scheme)

    def _stack(self, branch: str) -> _Stack:
        return self.stacks["shared"] if "shared" in self.stacks else self.stacks[branch]

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per-step item tables: ``E``, ``G_o = W @ E``, each modality's ``T_m`` and initial centres.

        ``T_m`` is ``A_m @ E`` (or, for ``wo_cgc``, the mapped features); it is the
        modality's input table and its scoring table. The initial centres are
        ``Z_m = C_m @ T_m`` times ``d**centre_scale_power``.
        """
        emb = self.item_embedding.weight
        tables, centres = {}, {}
        with torch.autocast(emb.device.type, enabled=False):  # sparse kernels stay float32
            g_o = torch.sparse.mm(self.cooccurrence, emb)
            for i, m in enumerate(self.modalities):
                if self.use_graphs:
                    tables[m] = torch.sparse.mm(getattr(self, f"graph_{i}"), emb)
                else:
                    tables[m] = self.feature_maps[str(i)](getattr(self, f"features_{i}"))
                if self.use_centres:
                    centres[m] = torch.sparse.mm(getattr(self, f"centres_{i}"), tables[m]) * self.centre_scale
        return emb, g_o, tables, centres

    def _outputs(self, at: OutputRows) -> _Outputs:
        """User vectors at the output positions ``at``: fused ``u_s`` (R, d) and ``u_m`` per modality."""
        seq, rows_b, rows_j = at.seq, at.rows_b, at.rows_j
        emb, g_o, tables, centres = self._tables()
        keep = (seq != 0).unsqueeze(-1)
        pos = position_ids(seq)
        x = {ID: self._stack(ID).embed(g_o[seq] * self.id_scale, pos, keep)}
        for m in self.modalities:
            x[m] = self._stack(m).embed(tables[m][seq] * self.modal_scale, pos, keep)
        first = {m: x[m][rows_b, rows_j] for m in self.modalities}  # layer-0 input, for centre selection
        mask = causal_padding_mask(seq)
        sizes = {len(names) for _, names in self.groups}
        masks = {r: mask.repeat(r, 1, 1, 1) if r > 1 else mask for r in sizes}
        keeps = {r: keep.repeat(r, 1, 1) if r > 1 else keep for r in sizes}
        layer_inputs: dict[str, list[torch.Tensor]] = {m: [] for m in self.modalities}
        for layer in range(self.n_layers):
            for stack_name, names in self.groups:
                for m in names:
                    if m != ID:
                        layer_inputs[m].append(x[m])
                reps = len(names)  # the group's branches run as one batch
                out = self.stacks[stack_name].layers[layer](torch.cat([x[n] for n in names]), masks[reps], keeps[reps])
                x.update(zip(names, out.split(seq.size(0))))
        h = {name: x[name][rows_b, rows_j] for name in x}
        users = {}
        for m in self.modalities:
            v, stack = h[m], self._stack(m)
            if self.use_centres:
                opts = CentreOptions(mask=self.centre_mask, tau=self.tau, sample=self.training or self.eval_gumbel,
                                     dropout=stack.dropout if self.centre_dropout else None,
                                     ffn_norm=self.centre_ffn_norm, chunk_rows=self.centre_chunk)
                v = v + self.alpha * centre_mix(list(stack.layers), centres[m], first[m], layer_inputs[m], at, opts)
            users[m] = stack.last_norm(v)
        fused = self.beta * h[ID] + sum(self.weights[m] * h[m] for m in self.modalities)
        return _Outputs(self._stack(ID).last_norm(fused), users, emb, tables)

    def _trim(self, seq: torch.Tensor, target: torch.Tensor | None = None):
        """Drop columns that are padding in every row (exact: positions count from the oldest item)."""
        if seq.size(1) > self.max_len:
            raise ValueError(f"sgp4sr: sequence length {seq.size(1)} exceeds max_len {self.max_len}")
        real = (seq != 0).any(0)
        start = int(real.float().argmax()) if bool(real.any()) else seq.size(1) - 1
        return seq[:, start:], None if target is None else target[:, start:]

    def _positions(self, batch: Batch) -> OutputRows:
        """Trimmed sequence, output positions (rows_b, rows_j), their targets, and whether there is one per row.

        With targets: every position whose target is not 0 (one-pass or prefix
        form). Without: the last position of each row (evaluation).
        """
        seq, target = self._trim(batch.seq, batch.target)
        if target is None:
            rows_b = torch.arange(seq.size(0), device=seq.device)
            return OutputRows(seq, rows_b, torch.full_like(rows_b, seq.size(1) - 1), None, True)
        rows_b, rows_j = torch.nonzero(target, as_tuple=True)
        if rows_b.numel() == 0:
            raise ValueError("sgp4sr: batch has no target (every target is 0)")
        one_per_row = rows_b.numel() == seq.size(0) and bool((rows_j == seq.size(1) - 1).all())
        return OutputRows(seq, rows_b, rows_j, target[rows_b, rows_j], one_per_row)

    def user_vectors(self, batch: Batch) -> dict[str, torch.Tensor]:
        """User vectors (R, d) at each output position (see :meth:`_positions`): ``u_s`` and one per modality."""
        out = self._outputs(self._positions(batch))
        return {"u_s": out.u_s, **out.users}

    def calculate_loss(self, batch: Batch) -> torch.Tensor:
        """``CE(u_s E^T) + sum_m w_m CE(u_m T_m^T)`` averaged over every position with a target."""
        if batch.target is None:
            raise ValueError("sgp4sr: calculate_loss needs batch.target")
        at = self._positions(batch)
        u_s, users, emb, tables = self._outputs(at)
        loss = masked_cross_entropy(u_s @ emb.T, at.target)
        for m in self.modalities:
            loss = loss + self.weights[m] * masked_cross_entropy(users[m] @ tables[m].T, at.target)
        return loss

    def score_terms(self) -> tuple[str, ...]:
        """``id`` (``u_s E^T``) and one term per modality (``w_m u_m T_m^T``)."""
        return (ID, *self.modalities)

    def full_sort_predict(self, batch: Batch) -> torch.Tensor:
        """``y = u_s E^T + sum_m w_m u_m T_m^T`` for the next item after each row, as one matmul; PAD -inf.

        Under :meth:`scoring_only` only that term of the sum."""
        u_s, users, emb, tables = self._outputs(self._positions(Batch(batch.seq)))
        terms = [(ID, u_s, emb), *((m, self.weights[m] * users[m], tables[m]) for m in self.modalities)]
        terms = [t for t in terms if self.score_term in (None, t[0])]
        left = torch.cat([u for _, u, _ in terms], dim=1)
        right = torch.cat([table for _, _, table in terms], dim=1)
        return self.mask_padding_scores(left @ right.T)


def _pick_modalities(ctx: ModelContext, use_graphs: bool, fused_only: bool) -> list[str]:
    """The branches: every context modality but ``fused``, or only ``fused`` for ``wo_mul``."""
    source, what = (ctx.modal_graphs, "modal_graphs") if use_graphs else (ctx.features, "features")
    if fused_only:
        if FUSED not in source:
            raise ValueError(f"sgp4sr wo_mul: the context has no '{FUSED}' modality in {what} "
                             f"(has: {sorted(source)}); build the fused graphs/centres first")
        return [FUSED]
    names = sorted(m for m in source if m != FUSED)
    if not names:
        raise ValueError(f"sgp4sr: the context has no modality in {what}")
    return names


def _sparse(matrix, shape: tuple, what: str) -> torch.Tensor:
    if matrix is None:
        raise ValueError(f"sgp4sr: the model context has no {what}")
    rows_ok = shape[0] is None or matrix.shape[0] == shape[0]
    if matrix.ndim != 2 or not rows_ok or matrix.shape[1] != shape[1]:
        raise ValueError(f"sgp4sr: {what} has shape {tuple(matrix.shape)}, expected {shape}")
    return sparse_to_torch(matrix)


def _features(ctx: ModelContext, m: str) -> np.ndarray:
    feats = ctx.features.get(m)
    if feats is None:
        raise ValueError(f"sgp4sr wo_cgc: the context has no features for modality {m!r}")
    if feats.ndim != 2 or feats.shape[0] != ctx.n_items:
        raise ValueError(f"sgp4sr: features[{m!r}] has shape {feats.shape}, expected ({ctx.n_items}, d_m)")
    return np.ascontiguousarray(feats, dtype=np.float32)
