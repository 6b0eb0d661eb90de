"""Input/params helpers of the graph stage's rules (workflow/rules/graphs.smk).

Kept out of the rule file so it holds rules only and so the config -> files
logic is unit-tested. :class:`GraphRules` keeps the validated config; its bound
methods take Snakemake's ``wildcards``. The file names come from
:mod:`sgp4sr.layout`; the train stage asks :meth:`GraphRules.graph_files`
which graph files a run reads.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sgp4sr import layout
from sgp4sr.config import config_seed, schema_defaults

#: wildcard patterns of the graph rules' outputs
WILDCARDS = {
    "fset": r"clean|[A-Za-z0-9_]+@noise[0-9.]+",
    "H": r"[0-9]+",
    "mu_m": r"[0-9.]+(?:e[+-]?[0-9]+)?",
    "mu_o": r"[0-9.]+(?:e[+-]?[0-9]+)?",
    "k": r"[0-9]+",
}


class GraphRuleError(ValueError):
    """A rule asked for a modality or feature set the dataset does not configure."""


class GraphRules:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.seed = config_seed(config)

    # -- config ------------------------------------------------------------------------------
    def modalities(self, dataset: str) -> list[str]:
        return list(self.config["datasets"][dataset].get("modalities", {}))

    def settings(self, dataset: str) -> dict[str, Any]:
        """The dataset's ``graphs`` config over the schema's defaults (knn_k, mu_m, mu_o, centres, kmeans)."""
        return {**schema_defaults("graphs"), **self.config["datasets"][dataset].get("graphs", {})}

    def kmeans(self, wildcards) -> str:
        return self.settings(wildcards.dataset)["kmeans"]

    # -- paths ---------------------------------------------------------------------------------
    def feature_files(self, dataset: str, fset: str, modality: str) -> list[str]:
        """Feature matrices of ``modality`` in feature set ``fset`` (every modality for ``fused``)."""
        mods = self.modalities(dataset)
        noisy = layout.noisy_modality(fset)
        if noisy is not None and noisy not in mods:
            raise GraphRuleError(f"feature set {fset!r}: dataset {dataset!r} has no modality {noisy!r}; "
                                 f"configured: {mods}")
        if modality == layout.FUSED:
            if not mods:
                raise GraphRuleError(f"dataset {dataset!r} has no modalities to fuse")
            chosen = mods
        elif modality in mods:
            chosen = [modality]
        else:
            raise GraphRuleError(f"dataset {dataset!r} has no modality {modality!r}; configured: {mods} "
                                 f"(or {layout.FUSED!r})")
        return [layout.feature_file(dataset, m, fset) for m in chosen]

    def graph_files(self, dataset: str, fset: str = layout.CLEAN, settings: Mapping[str, Any] | None = None,
                    mods: Sequence[str] | None = None, roles: Sequence[str] = ("cooccurrence", "modal_graphs",
                                                                                 "centres")) -> dict[str, str]:
        """Paths a run reads, by input name: ``cooccurrence``, ``graph_<m>`` and (k > 0) ``centres_<m>``.

        ``settings`` are the graph settings the run uses (missing keys: the dataset's), ``mods`` the
        modalities (default: the dataset's; ``["fused"]`` for w/o MUL), ``roles`` the inputs it reads.
        """
        settings = {**self.settings(dataset), **(settings or {})}
        mods = self.modalities(dataset) if mods is None else list(mods)
        folder = layout.fset_graphs_dir(dataset, fset)
        files = {}
        if "cooccurrence" in roles:
            files["cooccurrence"] = layout.cooccurrence_file(dataset)
        for m in mods:
            if "modal_graphs" in roles:
                files[f"graph_{m}"] = f"{folder}/{layout.modal_graph_name(m, settings)}"
            if "centres" in roles and int(settings["centres"]) > 0:
                files[f"centres_{m}"] = f"{folder}/{layout.centres_name(m, settings['centres'], self.seed)}"
        return files

    # -- rule helpers (take wildcards) ---------------------------------------------------------
    @staticmethod
    def split_inputs(wildcards) -> dict[str, str]:
        return layout.split_files(wildcards.dataset)

    @staticmethod
    def split_dir(wildcards) -> str:
        return layout.data_dir(wildcards.dataset)

    def modal_graph_features(self, wildcards) -> list[str]:
        return self.feature_files(wildcards.dataset, wildcards.fset, wildcards.modality)

    def summary_inputs(self, wildcards) -> dict[str, Any]:
        """The co-occurrence graph, each modality's graph statistics and (k > 0) its centres."""
        settings = {"knn_k": wildcards.H, "mu_m": wildcards.mu_m, "mu_o": wildcards.mu_o}
        folder = layout.fset_graphs_dir(wildcards.dataset, wildcards.fset)
        mods = self.modalities(wildcards.dataset)
        inputs: dict[str, Any] = {
            "cooccurrence": layout.cooccurrence_file(wildcards.dataset),
            "stats": [f"{folder}/{layout.modal_graph_name(m, settings, '.json')}" for m in mods]}
        if int(wildcards.k) > 0:
            inputs["centres"] = [f"{folder}/{layout.centres_name(m, wildcards.k, self.seed)}" for m in mods]
        return inputs

    @staticmethod
    def summary_centres_arg(wildcards, input) -> str:  # noqa: A002 (Snakemake's name)
        return "--centres " + " ".join(input.centres) if int(wildcards.k) > 0 else ""
