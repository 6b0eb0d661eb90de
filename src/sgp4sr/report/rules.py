"""Input/params helpers of the report stage's rules (workflow/rules/report.smk).

Kept out of the rule file so it holds rules only (``snakemake --lint``); the
run lists come from :mod:`sgp4sr.report.plan`, which also builds the targets
of ``all``, so a rule never reads a run that ``all`` did not ask for.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from sgp4sr import layout
from sgp4sr.config import dataset_training
from sgp4sr.engine.settings import TrainConfig
from sgp4sr.report import plan


class ReportRules:
    """Bound methods take Snakemake's ``wildcards`` (and ``output`` where named)."""

    def __init__(self, config: Mapping[str, Any], checkpoints: Any = None, resources_dir: str = "resources") -> None:
        self.config = config
        self.resources = resources_dir
        self.checkpoints = checkpoints
        self.experiments = plan.experiments(config)

    @staticmethod
    def _json(obj: Any) -> str:
        return json.dumps(obj, sort_keys=True)

    # -- common ----------------------------------------------------------------------------
    @staticmethod
    def output_prefix(wildcards, output) -> str:
        """The shared stem of a step's outputs (the command adds the suffixes)."""
        return os.path.splitext(output[0])[0]

    def proposed(self, wildcards) -> str:
        return self.experiments["proposed"]

    def metrics(self, wildcards) -> str:
        return " ".join(self.experiments["metrics"])

    def significance_metric(self, wildcards) -> str:
        return self.experiments["significance_metric"]

    def noise_modality(self, wildcards) -> str:
        return self.experiments["noise"]["modality"]

    # -- tables ----------------------------------------------------------------------------
    def table1_stats(self, wildcards) -> list[str]:
        return [layout.stats_file(ds) for ds in plan.datasets(self.config)]

    def table1_paper(self, wildcards) -> str:
        cfg = self.config["datasets"]
        return self._json({ds: cfg[ds]["paper_stats"] for ds in plan.datasets(self.config) if "paper_stats" in cfg[ds]})

    def table2_inputs(self, wildcards) -> list[str]:
        """metrics.json and ranks.parquet (the Wilcoxon test reads the ranks) of every default run and bound."""
        return plan.run_files(plan.table2_runs(self.config) + plan.bound_runs(self.config), ranks=True)

    # -- bounds (rule bound) ---------------------------------------------------------------------
    def bound_inputs(self, wildcards) -> dict[str, Any]:
        """The split, and for the oracle the demo generator's truth files."""
        inputs: dict[str, Any] = {"split": list(layout.split_files(wildcards.dataset).values())}
        if wildcards.bound == "oracle":
            from sgp4sr.data.demo import truth_files
            from sgp4sr.data.rules import DEMO_CATEGORY

            folder = layout.download_dir(self.resources, wildcards.dataset)
            inputs["truth"] = [str(p) for p in truth_files(folder, DEMO_CATEGORY).values()]
        return inputs

    @staticmethod
    def bound_out(wildcards, output) -> str:
        return os.path.dirname(output.metrics)

    def bound_truth_arg(self, wildcards) -> str:
        """``--truth <the demo's raw folder>`` for the oracle (its files are named by ``DEMO_CATEGORY``)."""
        if wildcards.bound != "oracle":
            return ""
        return f"--truth {layout.download_dir(self.resources, wildcards.dataset)}"

    def topk(self, wildcards) -> str:
        topk = dataset_training(self.config, wildcards.dataset).get("topk", TrainConfig().topk)
        return " ".join(str(k) for k in topk)

    def table2_metrics(self, wildcards) -> str:
        return " ".join(f for f in self.table2_inputs(wildcards) if f.endswith("metrics.json"))

    def table3_inputs(self, wildcards) -> list[str]:
        return plan.run_files(plan.table3_runs(self.config))

    def table3_variants(self, wildcards) -> str:
        return " ".join(["default", *self.config["run"].get("ablations", [])])

    # -- figures ---------------------------------------------------------------------------
    def noise_inputs(self, wildcards) -> list[str]:
        return plan.run_files(plan.noise_runs(self.config))

    def centre_inputs(self, wildcards) -> list[str]:
        return plan.run_files(plan.centre_runs(self.config))

    def centre_default_k(self, wildcards) -> str:
        return self._json({ds: plan.centre_default_k(self.config, ds) for ds in plan.datasets(self.config)})

    # -- tuning ----------------------------------------------------------------------------
    def grid_inputs(self, wildcards) -> list[str]:
        return plan.run_files(plan.tuning_grid_runs(self.config, wildcards.dataset))

    def valid_metric(self, wildcards) -> str:
        return dataset_training(self.config, wildcards.dataset).get("valid_metric", "recall@5")

    def defaults(self, wildcards) -> str:
        return self._json(plan.dataset_defaults(self.config, wildcards.dataset))

    def selected_files(self, wildcards) -> list[str]:
        """Each dataset's selection (waits for the ``tuning_select`` checkpoint)."""
        return [self.checkpoints.tuning_select.get(dataset=ds).output.selected for ds in plan.datasets(self.config)]

    def tuned_inputs(self, wildcards) -> list[str]:
        """After selection: the chosen point over every seed, and the default runs beside it."""
        runs = []
        for ds, path in zip(plan.datasets(self.config), self.selected_files(wildcards)):
            with open(path) as handle:
                variant = json.load(handle)["variant"]
            runs += plan.tuned_runs(self.config, ds, variant)
        return plan.run_files(runs)
