"""Input/params/resources helpers of the train stage's rules (workflow/rules/train.smk).

A run's ``params`` and inputs are its *effective* settings and files: the
training settings after its variant (``lr~...``), the model's hyper-parameters,
and, only for the roles the model reads after its ablations, the graph settings
those files are built from (the k of ``k~4``; nothing about centres for
``wo_cip``; nothing at all about graphs for SASRec). Snakemake reruns a job
when its params or inputs change, so a changed setting reruns exactly the runs
whose computation it changes (docs/architecture.md, "Reruns and resumes").

Nothing here imports torch: the Snakefile builds :class:`TrainRules` at parse time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from sgp4sr import layout
from sgp4sr.config import (config_seed, dataset_model, dataset_training, pretraining_settings, pretraining_sources,
                           pretrains, run_training_settings, schema_defaults)
from sgp4sr.engine.resources import UNSIZED, Estimate, estimate_from_files
from sgp4sr.graphs.rules import GraphRules
from sgp4sr.models.hparams import check_block
from sgp4sr.models.registry import model_requires
from sgp4sr.variants import parse_variant

GRAPH_ROLES = ("cooccurrence", "modal_graphs", "centres")
#: pretraining keys the loop reads (the rest choose models, sources, seed and fine-tuning)
PRETRAIN_LOOP_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "seq_seq_weight", "item_drop_ratio", "device",
                      "model_overrides")


class TrainRuleError(ValueError):
    """A run that the config cannot make: unknown model, bad variant, features missing."""


@dataclass
class RunPlan:
    """What one run reads and the settings it computes with."""

    requires: tuple[str, ...]
    inputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


class TrainRules:
    def __init__(self, config: Mapping[str, Any], graphs: GraphRules | None = None) -> None:
        self.config = config
        self.graphs = graphs or GraphRules(config)
        self.seed = config_seed(config)
        self.threads = int(config.get("train_threads", schema_defaults()["train_threads"]))
        # every helper of a job asks for its plan and Snakemake asks each several times; the config is fixed
        self._plans: dict[tuple[str, str, str], RunPlan] = {}
        self._estimates: dict[tuple[str, str, str], Estimate] = {}

    def modalities(self, dataset: str) -> list[str]:
        return self.graphs.modalities(dataset)

    # -- the effective run --------------------------------------------------------------------
    def plan(self, dataset: str, model: str, variant_text: str) -> RunPlan:
        """The inputs and params of ``results/<dataset>/runs/<model>/<variant>/seed*``."""
        try:
            variant = parse_variant(variant_text)
            base = model_requires(model)
        except (KeyError, ValueError) as error:
            raise TrainRuleError(str(error).strip("'\"")) from None
        if variant.ablations and model != "sgp4sr":
            raise TrainRuleError(f"variant '{variant_text}': ablations {list(variant.ablations)} apply to sgp4sr "
                                 f"only, not {model}")
        requires = variant.requires(base)
        mods = self.modalities(dataset)
        reads_features = bool(set(requires) - {"categories"})
        if reads_features and not mods:
            raise TrainRuleError(f"model {model!r} needs item features but dataset {dataset!r} has no modalities")
        plan = RunPlan(requires, inputs={f"split_{name.split('.')[0]}": path
                                         for name, path in layout.split_files(dataset).items()})
        if "features" in requires:
            for m in mods:
                plan.inputs[f"features_{m}"] = layout.feature_file(dataset, m, variant.fset)
        graph_settings = variant.run_graph_settings(self.graphs.settings(dataset), requires)
        if set(requires) & set(GRAPH_ROLES):
            fused = [layout.FUSED] if "wo_mul" in variant.ablations else None
            plan.inputs.update(self.graphs.graph_files(dataset, variant.fset, graph_settings, fused,
                                                       roles=[r for r in GRAPH_ROLES if r in requires]))

        training = {**run_training_settings(self.config, dataset, model), **variant.training_overrides()}
        overrides = variant.model_overrides()
        problems = check_block(model, overrides, f"variant '{variant_text}'")
        if problems:
            raise TrainRuleError("; ".join(problems))
        params: dict[str, Any] = {"dataset": dataset, "training": training,
                                  "model": {**dataset_model(self.config, dataset, model), **overrides}}
        if reads_features:
            params["modalities"] = mods
        if set(requires) & set(GRAPH_ROLES):
            params["graphs"] = graph_settings
        if "centres" in requires and int(graph_settings.get("centres", 0)) > 0:
            params["centres_seed"] = self.seed
        if model == "iisan":
            plan.inputs["iisan_hidden"] = layout.iisan_cache_file(dataset)
            params["model"]["hidden_states"] = layout.iisan_cache_file(dataset)
        if pretrains(self.config, model, dataset):
            plan.inputs["pretrained"] = layout.pretrained_file(model, dataset)
            params["finetune"] = {"freeze_encoder": pretraining_settings(self.config)["freeze_encoder"]}
        plan.params = params
        return plan

    def _plan(self, wildcards) -> RunPlan:
        key = (wildcards.dataset, wildcards.model, wildcards.variant)
        if key not in self._plans:
            self._plans[key] = self.plan(*key)
        return self._plans[key]

    # -- rule helpers (take wildcards) ----------------------------------------------------------
    def inputs(self, wildcards) -> dict[str, str]:
        return dict(self._plan(wildcards).inputs)  # a copy: the plan is shared by this job's other helpers

    def params(self, wildcards) -> str:
        """The effective settings as one JSON string (``sgp4sr train run --params``)."""
        return json.dumps(self._plan(wildcards).params, sort_keys=True)

    @staticmethod
    def data_dir(wildcards) -> str:
        return layout.data_dir(wildcards.dataset)

    def features_arg(self, wildcards) -> str:
        needs = "features" in self._plan(wildcards).requires
        return f"--features {layout.features_dir(wildcards.dataset)}" if needs else ""

    def graphs_arg(self, wildcards) -> str:
        needs = set(self._plan(wildcards).requires) & set(GRAPH_ROLES)
        return f"--graphs {layout.graphs_dir(wildcards.dataset)}" if needs else ""

    def init_arg(self, wildcards) -> str:
        """``--init <pre-trained weights>`` when this model is pre-trained for this dataset."""
        pretrained = self._plan(wildcards).inputs.get("pretrained")
        return f"--init {pretrained}" if pretrained else ""

    @staticmethod
    def out(wildcards) -> str:
        return layout.run_dir(wildcards.dataset, wildcards.model, wildcards.variant, wildcards.seed)

    def _gpu(self, training: Mapping[str, Any]) -> bool:
        return training.get("device") == "cuda" or bool(self.config.get("slurm_gpu", False))

    def _estimate(self, wildcards, input) -> Estimate:  # noqa: A002 (Snakemake's name)
        """Sized once per run (mem_mb and runtime both ask; reading train.inter is a full scan)."""
        key = (wildcards.dataset, wildcards.model, wildcards.variant)
        if key in self._estimates:
            return self._estimates[key]
        plan = self._plan(wildcards)
        features = [path for name, path in plan.inputs.items() if name.startswith("features_")]
        if not all(Path(f).exists() for f in [input.split_items, input.split_train, *features]):
            return UNSIZED  # a dry run before the split exists; the real job is sized when it is scheduled
        p = plan.params
        self._estimates[key] = estimate_from_files(wildcards.model, input.split_items, input.split_train, features,
                                                   p["model"], p["training"], p.get("graphs", {}),
                                                   self._gpu(p["training"]))
        return self._estimates[key]

    def mem_mb(self, wildcards, input, attempt) -> int:  # noqa: A002
        """Estimated peak memory (sgp4sr.engine.resources), doubled on each retry (``--retries``)."""
        return self._estimate(wildcards, input).mem_mb * int(attempt)

    def runtime(self, wildcards, input, attempt) -> int:  # noqa: A002
        """Estimated wall time in minutes (sgp4sr.engine.resources), doubled on each retry."""
        return self._estimate(wildcards, input).runtime_min * int(attempt)

    def slurm_extra(self, wildcards) -> str:
        """One GPU per training job on SLURM only when the config asks for it (``slurm_gpu: true``)."""
        return "--gres=gpu:1" if self.config.get("slurm_gpu", False) else ""

    # -- pre-training: MISSRec / UniSRec on the other datasets (rule pretrain) ------------------
    def pretrain_inputs(self, wildcards) -> list[str]:
        """Each source's split files and clean feature matrices (a list: dataset names may hold '-')."""
        inputs: list[str] = []
        for src in pretraining_sources(self.config, wildcards.dataset):
            inputs += list(layout.split_files(src).values())
            inputs += [layout.feature_file(src, m) for m in self.modalities(src)]
        return inputs

    def pretrain_sources_arg(self, wildcards) -> str:
        return " ".join(f"--source {src} {layout.data_dir(src)} {layout.features_dir(src)}"
                        for src in pretraining_sources(self.config, wildcards.dataset))

    def pretrain_params(self, wildcards) -> str:
        """The target's model hyper-parameters (the shapes must match at fine-tuning) and the loop settings."""
        settings = pretraining_settings(self.config)
        ds = wildcards.dataset
        return json.dumps({"model": dataset_model(self.config, ds, wildcards.model), "modalities": self.modalities(ds),
                           "max_len": dataset_training(self.config, ds)["max_len"],
                           "pretraining": {k: settings[k] for k in PRETRAIN_LOOP_KEYS}}, sort_keys=True)

    def pretrain_seed(self, wildcards) -> int:
        seed = pretraining_settings(self.config)["seed"]
        return self.seed if seed is None else int(seed)

    @staticmethod
    def pretrain_out(wildcards) -> str:
        return layout.pretrain_dir(wildcards.model, wildcards.dataset)

    def pretrain_runtime(self, wildcards) -> int:
        """Minutes for a scheduler: demo sources are small, the paper's are not."""
        sources = pretraining_sources(self.config, wildcards.dataset)
        demo = all(self.config["datasets"][s]["source"] == "demo" for s in sources)
        return 60 if demo else 24 * 60
