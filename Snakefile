# SGP4SR reproduction workflow. Table of contents; the logic lives in the
# `sgp4sr` package and each stage's rules in workflow/rules/<stage>.smk.
from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


rule all:
    input:
        all_targets(),
    default_target: True


include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/graphs.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
