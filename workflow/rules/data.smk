# Rules of the data stage (docs/architecture.md): raw files -> results/<ds>/data/.
# Which rule makes a dataset's files depends on its `source`; wildcard
# constraints built from the config's dataset names keep the choice unique:
#   amazon2014 / amazon2018: download -> parse -> filter -> split
#     (parse reads `interactions`: the 5-core reviews, or the 2018 ratings CSV;
#      filter applies `dedup` and, with `require_meta`, reads parsed/items.parquet)
#   demo:                    demo_data -> parse -> filter -> split
#   recbole:                 (download) -> parse_recbole -> filter -> split
#   benchmark:               (download) -> import_benchmark
# and `stats` for every source. Input/params helpers: sgp4sr.data.rules.
from sgp4sr.data.rules import DEMO_CATEGORY, DataRules

DATA = DataRules(config, RESOURCES)

SPLIT_OUTPUTS = {
    "item_table": "results/{dataset}/data/items.parquet",
    "user_table": "results/{dataset}/data/users.parquet",
    "interactions": "results/{dataset}/data/interactions.parquet",
    "train": "results/{dataset}/data/train.inter",
    "valid": "results/{dataset}/data/valid.inter",
    "test": "results/{dataset}/data/test.inter",
}


rule download:
    output:
        f"{RESOURCES}/downloads/{{dataset}}/{{filename}}",
    wildcard_constraints:
        dataset=DATA.download_datasets,
        filename=r"[^/]+",
    log:
        "logs/data/{dataset}.download.{filename}.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.download.{filename}.tsv"
    params:
        url=DATA.download_url,
        checks=DATA.download_checks,
    threads: 1
    resources:
        mem_mb=500,
        runtime=240,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} prepare download --url {params.url:q} --dest {output:q} {params.checks}"


rule demo_data:
    output:
        reviews=f"{RESOURCES}/downloads/{{dataset}}/reviews_{DEMO_CATEGORY}_5.json.gz",
        meta=f"{RESOURCES}/downloads/{{dataset}}/meta_{DEMO_CATEGORY}.json.gz",
        truth=f"{RESOURCES}/downloads/{{dataset}}/truth_{DEMO_CATEGORY}.csv",
        truth_users=f"{RESOURCES}/downloads/{{dataset}}/truth_users_{DEMO_CATEGORY}.csv",
        law=f"{RESOURCES}/downloads/{{dataset}}/law_{DEMO_CATEGORY}.json",
        images=directory(f"{RESOURCES}/downloads/{{dataset}}/images"),
    wildcard_constraints:
        dataset=DATA.demo_datasets,
    log:
        "logs/data/{dataset}.demo.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.demo.tsv"
    params:
        out_dir=DATA.demo_out_dir,
        demo=DATA.demo_config_json,
        seed=SEED,
        category=DEMO_CATEGORY,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} prepare demo --out-dir {params.out_dir:q} --config-json {params.demo:q}"
        " --seed {params.seed} --category {params.category}"


rule parse:
    input:
        unpack(DATA.raw_inputs),
    output:
        interactions="results/{dataset}/parsed/interactions.parquet",
        item_meta="results/{dataset}/parsed/items.parquet",
    wildcard_constraints:
        dataset=DATA.raw_datasets,
    log:
        "logs/data/{dataset}.parse.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.parse.tsv"
    params:
        interactions=DATA.interactions_arg,
        skip=DATA.skip_malformed_flag,
    threads: 1
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} prepare parse {params.interactions} --meta {input.meta:q}"
        " --out-dir results/{wildcards.dataset}/parsed {params.skip}"


rule parse_recbole:
    input:
        unpack(DATA.recbole_inputs),
    output:
        interactions="results/{dataset}/parsed/interactions.parquet",
        item_meta="results/{dataset}/parsed/items.parquet",
    wildcard_constraints:
        dataset=DATA.recbole_datasets,
    log:
        "logs/data/{dataset}.parse.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.parse.tsv"
    params:
        args=DATA.recbole_args,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} prepare parse-recbole --inter {input.inter:q} {params.args}"
        " --out-dir results/{wildcards.dataset}/parsed"


rule filter:
    input:
        unpack(DATA.filter_inputs),
    output:
        "results/{dataset}/filtered/interactions.parquet",
    wildcard_constraints:
        dataset=DATA.parsed_datasets,
    log:
        "logs/data/{dataset}.filter.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.filter.tsv"
    params:
        kcore=DATA.kcore,
        options=DATA.filter_args,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} prepare filter --input {input.interactions} --output {output} --kcore {params.kcore}"
        " --dataset {wildcards.dataset} {params.options}"


rule split:
    input:
        interactions="results/{dataset}/filtered/interactions.parquet",
        item_meta="results/{dataset}/parsed/items.parquet",
    output:
        **SPLIT_OUTPUTS,
    wildcard_constraints:
        dataset=DATA.parsed_datasets,
    log:
        "logs/data/{dataset}.split.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.split.tsv"
    params:
        unseen=DATA.unseen_targets,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} prepare split --interactions {input.interactions} --items {input.item_meta}"
        " --out-dir results/{wildcards.dataset}/data --unseen-targets {params.unseen}"


rule import_benchmark:
    input:
        unpack(DATA.benchmark_inputs),
    output:
        **SPLIT_OUTPUTS,
    wildcard_constraints:
        dataset=DATA.benchmark_datasets,
    log:
        "logs/data/{dataset}.import_benchmark.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.import_benchmark.tsv"
    params:
        train=DATA.benchmark_train_arg,
        unseen=DATA.unseen_targets,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} prepare import-benchmark {params.train} --valid {input.valid:q}"
        " --test {input.test:q} --out-dir results/{wildcards.dataset}/data --unseen-targets {params.unseen}"


rule stats:
    input:
        interactions="results/{dataset}/data/interactions.parquet",
        item_table="results/{dataset}/data/items.parquet",
    output:
        "results/{dataset}/data/stats.json",
    log:
        "logs/data/{dataset}.stats.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.stats.tsv"
    params:
        paper=DATA.paper_stats_json,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} prepare stats --data-dir results/{wildcards.dataset}/data --output {output}"
        " --paper-json {params.paper:q}"
