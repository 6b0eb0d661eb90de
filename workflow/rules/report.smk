# Rules of the report stage (see docs/architecture.md): Tables 1-3, Figures 3-4,
# the hyper-parameter search (a checkpoint: the chosen point decides which runs
# follow) and its table. Input/params helpers: sgp4sr.report.rules; which runs
# each step reads comes from sgp4sr.report.plan, which also lists the targets
# of `all`, so only configured models/datasets/seeds appear. Every run is a
# cached `train` job.
from sgp4sr.report.rules import ReportRules

REPORT_RULES = ReportRules(config, checkpoints, RESOURCES)

rule bound:
    input:
        unpack(REPORT_RULES.bound_inputs),
    output:
        metrics="results/{dataset}/runs/{bound}/default/seed1/metrics.json",
        ranks="results/{dataset}/runs/{bound}/default/seed1/ranks.parquet",
    wildcard_constraints:
        bound="|".join(BOUNDS),
    log:
        "logs/report/{dataset}.{bound}.log",
    benchmark:
        "logs/benchmarks/report/{dataset}.{bound}.tsv"
    params:
        data=TRAIN.data_dir,
        out=REPORT_RULES.bound_out,
        truth=REPORT_RULES.bound_truth_arg,
        topk=REPORT_RULES.topk,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} report bound --kind {wildcards.bound} --data {params.data:q} --out {params.out:q}"
        " --topk {params.topk} {params.truth}"


rule table1:
    input:
        stats=REPORT_RULES.table1_stats,
    output:
        csv="results/report/table1_stats.csv",
        md="results/report/table1_stats.md",
        tex="results/report/table1_stats.tex",
        html=report("results/report/table1_stats.html", caption="../report/table1.rst", category="Tables"),
    params:
        paper=REPORT_RULES.table1_paper,
        prefix=REPORT_RULES.output_prefix,
    log:
        "logs/report/table1.log",
    benchmark:
        "logs/benchmarks/report/table1.tsv"
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
        runs=REPORT_RULES.table2_inputs,
    output:
        csv="results/report/table2_overall.csv",
        md="results/report/table2_overall.md",
        tex="results/report/table2_overall.tex",
        html=report("results/report/table2_overall.html", caption="../report/table2.rst", category="Tables"),
    params:
        metrics_json=REPORT_RULES.table2_metrics,
        proposed=REPORT_RULES.proposed,
        metrics=REPORT_RULES.metrics,
        significance=REPORT_RULES.significance_metric,
        prefix=REPORT_RULES.output_prefix,
    log:
        "logs/report/table2.log",
    benchmark:
        "logs/benchmarks/report/table2.tsv"
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
        runs=REPORT_RULES.table3_inputs,
    output:
        csv="results/report/table3_ablation.csv",
        md="results/report/table3_ablation.md",
        tex="results/report/table3_ablation.tex",
        html=report("results/report/table3_ablation.html", caption="../report/table3.rst", category="Tables"),
    params:
        proposed=REPORT_RULES.proposed,
        variants=REPORT_RULES.table3_variants,
        metrics=REPORT_RULES.metrics,
        prefix=REPORT_RULES.output_prefix,
    log:
        "logs/report/table3.log",
    benchmark:
        "logs/benchmarks/report/table3.tsv"
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
        runs=REPORT_RULES.noise_inputs,
    output:
        png=report("results/report/figure3_noise.png", caption="../report/figure3.rst", category="Figures"),
        pdf="results/report/figure3_noise.pdf",
        csv="results/report/figure3_noise.csv",
    params:
        proposed=REPORT_RULES.proposed,
        modality=REPORT_RULES.noise_modality,
        prefix=REPORT_RULES.output_prefix,
    log:
        "logs/report/figure_noise.log",
    benchmark:
        "logs/benchmarks/report/figure_noise.tsv"
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
        runs=REPORT_RULES.centre_inputs,
    output:
        png=report("results/report/figure4_centres.png", caption="../report/figure4.rst", category="Figures"),
        pdf="results/report/figure4_centres.pdf",
        csv="results/report/figure4_centres.csv",
    params:
        proposed=REPORT_RULES.proposed,
        default_k=REPORT_RULES.centre_default_k,
        prefix=REPORT_RULES.output_prefix,
    log:
        "logs/report/figure_centres.log",
    benchmark:
        "logs/benchmarks/report/figure_centres.tsv"
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
        runs=REPORT_RULES.grid_inputs,
    output:
        selected="results/report/tuning/{dataset}/selected.json",
        grid=report(
            "results/report/tuning/{dataset}/grid.csv",
            caption="../report/tuning_grid.rst",
            category="Hyper-parameter search",
            subcategory="{dataset}",
        ),
    params:
        metric=REPORT_RULES.valid_metric,
        defaults=REPORT_RULES.defaults,
    log:
        "logs/report/tuning_select/{dataset}.log",
    benchmark:
        "logs/benchmarks/report/tuning_select/{dataset}.tsv"
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
        selected=REPORT_RULES.selected_files,
        runs=REPORT_RULES.tuned_inputs,
    output:
        csv="results/report/tuning.csv",
        md="results/report/tuning.md",
        tex="results/report/tuning.tex",
        html=report("results/report/tuning.html", caption="../report/tuning.rst", category="Hyper-parameter search"),
    params:
        metrics=REPORT_RULES.metrics,
        prefix=REPORT_RULES.output_prefix,
    log:
        "logs/report/tuning_table.log",
    benchmark:
        "logs/benchmarks/report/tuning_table.tsv"
    threads: 1
    conda:
        "../envs/sgp4sr.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "sgp4sr --log {log} report tuning-table --selected {input.selected} --runs {input.runs}"
        " --metrics {params.metrics} --out-prefix {params.prefix}"
