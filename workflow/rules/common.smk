# Shared helpers of the workflow: config validation, path builders and the
# target list of `all`. Rules in the stage files call these small named
# functions for their inputs and params instead of inline lambdas.
import json
from pathlib import Path

from sgp4sr.config import ConfigError, dataset_model, dataset_training, validate_config
from sgp4sr.report.plan import report_targets

try:
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
except ConfigError as _error:
    raise WorkflowError(str(_error)) from None


RESOURCES = config.get("resources_dir", "resources")
SEED = int(config.get("seed", 2026))
DATASETS = list(config["run"]["datasets"])


wildcard_constraints:
    dataset="[A-Za-z0-9_\-]+",
    modality="[A-Za-z0-9_]+",
    model="[A-Za-z0-9_]+",
    seed="[0-9]+",


def dataset_cfg(dataset):
    return config["datasets"][dataset]


def source_of(dataset):
    return dataset_cfg(dataset)["source"]


def download_dir(dataset):
    return f"{RESOURCES}/downloads/{dataset}"


def data_dir(dataset):
    return f"results/{dataset}/data"


def modalities(dataset):
    return list(dataset_cfg(dataset).get("modalities", {}))


def as_json(obj):
    """Params are passed to `sgp4sr` commands as one JSON string, quoted by the rule."""
    return json.dumps(obj, sort_keys=True)


def all_targets():
    """Everything `all` builds for the selected datasets (grows with the stages)."""
    targets = []
    for ds in DATASETS:
        targets.append(f"{data_dir(ds)}/stats.json")
    targets += report_targets(config)  # tables, figures, tuning (sgp4sr.report.plan)
    return targets
