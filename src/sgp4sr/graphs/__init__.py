"""Offline graph artefacts of SGP4SR (spec §1): co-occurrence ``W``, modal graphs ``A_m``
and interest-centre membership ``C_m``, built sparse and vectorised.

The engine reads them with :func:`load_graph` (``W`` and ``A_m``, scipy CSR)
and :func:`load_centres`.
"""

from sgp4sr.graphs.centres import Centres, build_centres, load_centres, save_centres
from sgp4sr.graphs.cooccurrence import build_cooccurrence, load_graph, save_sparse
from sgp4sr.graphs.neighbours import build_modal_graph, load_features, neighbour_sizes

__all__ = [
    "Centres", "build_centres", "load_centres", "save_centres",
    "build_cooccurrence", "load_graph", "save_sparse",
    "build_modal_graph", "load_features", "neighbour_sizes",
]
