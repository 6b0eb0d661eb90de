# Shared set-up of the workflow: validate the config, then build the helper
# objects whose bound methods the stage files pass to input:/params:. The
# helpers live in the package (unit-tested, no lambdas in rules); the file
# layout they all spell lives in sgp4sr.layout.
from pathlib import Path

from sgp4sr import layout
from sgp4sr.config import PRETRAINABLE, ConfigError, config_seed, schema_defaults, validate_config
from sgp4sr.engine.rules import TrainRules
from sgp4sr.graphs.rules import WILDCARDS as GRAPH_WILDCARDS, GraphRules
from sgp4sr.report.plan import BOUNDS, report_targets

try:
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
except ConfigError as _error:
    raise WorkflowError(str(_error)) from None


RESOURCES = config.get("resources_dir", schema_defaults()["resources_dir"])
SEED = config_seed(config)
GRAPHS = GraphRules(config)
# torch threads per training job (`train_threads`): the demo's small models run faster as parallel
# one-thread jobs than as one multi-thread job at a time
TRAIN = TrainRules(config, GRAPHS)


wildcard_constraints:
    dataset="[A-Za-z0-9_\-]+",
    modality="[A-Za-z0-9_]+",
    model="[A-Za-z0-9_]+",
    seed="[0-9]+",


def all_targets():
    """Everything `all` builds: each selected dataset's stats and the report's tables and figures
    (which pull in features, graphs and runs)."""
    stats = [layout.stats_file(ds) for ds in config["run"]["datasets"]]
    return stats + report_targets(config)  # tables, figures, tuning (sgp4sr.report.plan)
