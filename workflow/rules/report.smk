# Rules of the report stage (see docs/architecture.md): Tables 1-3, Figures 3-4,
# the hyper-parameter search and its table. Which runs each step reads comes
# from sgp4sr.report.plan (the same functions build the targets of `all`), so
# the rule inputs request exactly the configured models, datasets and seeds;
# every run is a cached `train` job.
import os

from sgp4sr.report import plan as report_plan

REPORT = report_plan.REPORT_DIR
EXPERIMENTS = report_plan.experiments(config)


def report_outputs(stem, caption, category):
    """CSV/Markdown/LaTeX for people who copy numbers; the HTML rendering goes into the report."""
    prefix = f"{REPORT}/{stem}"
    return {
        "csv": f"{prefix}.csv",
        "md": f"{prefix}.md",
        "tex": f"{prefix}.tex",
        "html": report(f"{prefix}.html", caption=caption, category=category),
    }


def output_prefix(wildcards, output):
    """The shared stem of a step's outputs (the command adds the suffixes)."""
    return os.path.splitext(output[0])[0]


def table1_stats(wildcards):
    return [f"{data_dir(ds)}/stats.json" for ds in DATASETS]


def table1_paper(wildcards):
    return as_json({ds: dataset_cfg(ds)["paper_stats"] for ds in DATASETS if "paper_stats" in dataset_cfg(ds)})


def table2_runs(wildcards):
    return report_plan.run_files(report_plan.table2_runs(config), ranks=True)


def table2_metrics(wildcards):
    return [f for f in table2_runs(wildcards) if f.endswith("metrics.json")]


def table3_metrics(wildcards):
    return report_plan.run_files(report_plan.table3_runs(config))


def table3_variants(wildcards):
    return " ".join(["default", *config["run"].get("ablations", [])])


def noise_metrics(wildcards):
    return report_plan.run_files(report_plan.noise_runs(config))


def centre_metrics(wildcards):
    return report_plan.run_files(report_plan.centre_runs(config))


def centre_default_k(wildcards):
    return as_json({ds: report_plan.centre_default_k(config, ds) for ds in DATASETS})


def proposed_model(wildcards):
    return EXPERIMENTS["proposed"]


def report_metrics(wildcards):
    return " ".join(EXPERIMENTS["metrics"])


def tuning_grid_metrics(wildcards):
    return report_plan.run_files(report_plan.tuning_grid_runs(config, wildcards.dataset))


def tuning_valid_metric(wildcards):
    return dataset_training(config, wildcards.dataset).get("valid_metric", "recall@5")


def tuning_defaults(wildcards):
    return as_json(report_plan.dataset_defaults(config, wildcards.dataset))


def tuning_selected(wildcards):
    return [checkpoints.tuning_select.get(dataset=ds).output.selected for ds in DATASETS]


def tuned_metrics(wildcards):
    """After selection: the chosen point over every seed (and the default runs beside it)."""
    runs = []
    for ds, path in zip(DATASETS, tuning_selected(wildcards)):
        with open(path) as handle:
            variant = json.load(handle)["variant"]
        runs += report_plan.tuned_runs(config, ds, variant)
    return report_plan.run_files(runs)


rule table1:
    input:
        stats=table1_stats,
    output:
        **report_outputs("table1_stats", "../report/table1.rst", "Tables"),
    params:
        paper=table1_paper,
        prefix=output_prefix,
    log:
        "logs/report/table1.log",
    benchmark:
        "benchmarks/snakemake/report/table1.tsv"
    threads: 1
    conda:
        "../envs/sgp4sr.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "sgp4sr --log {log} report table1 --stats {input.stats} --paper-stats {params.paper:q}"
        " --out-prefix {params.prefix}"


rule table2:
    input:
        runs=table2_runs,
    output:
        **report_outputs("table2_overall", "../report/table2.rst", "Tables"),
    params:
        metrics_json=table2_metrics,
        proposed=proposed_model,
        metrics=report_metrics,
        significance=EXPERIMENTS["significance_metric"],
        prefix=output_prefix,
    log:
        "logs/report/table2.log",
    benchmark:
        "benchmarks/snakemake/report/table2.tsv"
    threads: 1
    conda:
        "../envs/sgp4sr.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "sgp4sr --log {log} report table2 --runs {params.metrics_json} --proposed {params.proposed}"
        " --metrics {params.metrics} --significance-metric {params.significance} --out-prefix {params.prefix}"


rule table3:
    input:
        runs=table3_metrics,
    output:
        **report_outputs("table3_ablation", "../report/table3.rst", "Tables"),
    params:
        proposed=proposed_model,
        variants=table3_variants,
        metrics=report_metrics,
        prefix=output_prefix,
    log:
        "logs/report/table3.log",
    benchmark:
        "benchmarks/snakemake/report/table3.tsv"
    threads: 1
    conda:
        "../envs/sgp4sr.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "sgp4sr --log {log} report table3 --runs {input.runs} --proposed {params.proposed}"
        " --variants {params.variants} --metrics {params.metrics} --out-prefix {params.prefix}"


rule figure_noise:
    input:
        runs=noise_metrics,
    output:
        png=report(f"{REPORT}/figure3_noise.png", caption="../report/figure3.rst", category="Figures"),
        pdf=f"{REPORT}/figure3_noise.pdf",
        csv=f"{REPORT}/figure3_noise.csv",
    params:
        proposed=proposed_model,
        modality=EXPERIMENTS["noise"]["modality"],
        prefix=output_prefix,
    log:
        "logs/report/figure_noise.log",
    benchmark:
        "benchmarks/snakemake/report/figure_noise.tsv"
    threads: 1
    conda:
        "../envs/sgp4sr.yaml"
    resources:
        mem_mb=1500,
        runtime=5,
    shell:
        "sgp4sr --log {log} report figure-noise --runs {input.runs} --proposed {params.proposed}"
        " --modality {params.modality} --out-prefix {params.prefix}"


rule figure_centres:
    input:
        runs=centre_metrics,
    output:
        png=report(f"{REPORT}/figure4_centres.png", caption="../report/figure4.rst", category="Figures"),
        pdf=f"{REPORT}/figure4_centres.pdf",
        csv=f"{REPORT}/figure4_centres.csv",
    params:
        proposed=proposed_model,
        default_k=centre_default_k,
        prefix=output_prefix,
    log:
        "logs/report/figure_centres.log",
    benchmark:
        "benchmarks/snakemake/report/figure_centres.tsv"
    threads: 1
    conda:
        "../envs/sgp4sr.yaml"
    resources:
        mem_mb=1500,
        runtime=5,
    shell:
        "sgp4sr --log {log} report figure-centres --runs {input.runs} --proposed {params.proposed}"
        " --default-k {params.default_k:q} --out-prefix {params.prefix}"


checkpoint tuning_select:
    input:
        runs=tuning_grid_metrics,
    output:
        selected=f"{REPORT}/tuning/{{dataset}}/selected.json",
        grid=report(
            f"{REPORT}/tuning/{{dataset}}/grid.csv",
            caption="../report/tuning_grid.rst",
            category="Hyper-parameter search",
            subcategory="{dataset}",
        ),
    params:
        metric=tuning_valid_metric,
        defaults=tuning_defaults,
    log:
        "logs/report/tuning_select/{dataset}.log",
    benchmark:
        "benchmarks/snakemake/report/tuning_select/{dataset}.tsv"
    threads: 1
    conda:
        "../envs/sgp4sr.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "sgp4sr --log {log} report tuning-select --runs {input.runs} --metric {params.metric}"
        " --defaults {params.defaults:q} --out {output.selected} --grid-out {output.grid}"


rule tuning_table:
    input:
        selected=tuning_selected,
        runs=tuned_metrics,
    output:
        **report_outputs("tuning", "../report/tuning.rst", "Hyper-parameter search"),
    params:
        metrics=report_metrics,
        prefix=output_prefix,
    log:
        "logs/report/tuning_table.log",
    benchmark:
        "benchmarks/snakemake/report/tuning_table.tsv"
    threads: 1
    conda:
        "../envs/sgp4sr.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "sgp4sr --log {log} report tuning-table --selected {input.selected} --runs {input.runs}"
        " --metrics {params.metrics} --out-prefix {params.prefix}"
