# Rules of the train stage (see docs/architecture.md).
#   train     results/<ds>/runs/<model>/<variant>/seed<seed>/{metrics.json,ranks.parquet,model.pt}
#   pretrain  results/pretrain/<model>/<ds>/{model.pt,metrics.json}: MISSRec/UniSRec pre-trained on the
#             other datasets (config `pretraining`); a listed model's train job on <ds> starts from it
# A run reads the split, and only the features/graphs its model requires
# (sgp4sr.models.registry.REQUIRES, read without importing torch) for the
# variant's feature set and graph settings. Its params are its effective settings
# (TRAIN.plan), so a changed setting reruns exactly the runs it changes. While it
# runs, checkpoint.pt in the run folder lets a rerun of a killed job resume from
# its last epoch (docs/architecture.md, "Reruns and resumes").
# Input/params/resources helpers: sgp4sr.engine.rules (TRAIN, built in common.smk).

rule train:
    input:
        unpack(TRAIN.inputs),
    output:
        metrics="results/{dataset}/runs/{model}/{variant}/seed{seed}/metrics.json",
        ranks="results/{dataset}/runs/{model}/{variant}/seed{seed}/ranks.parquet",
        model="results/{dataset}/runs/{model}/{variant}/seed{seed}/model.pt",
    wildcard_constraints:
        variant=r"[A-Za-z0-9_.~+@\-]+",
        model=r"(?!(?:" + "|".join(BOUNDS) + r")/)[A-Za-z0-9_]+",  # a bound's run folder is rule bound's
    log:
        "logs/train/{dataset}/{model}/{variant}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{model}/{variant}/seed{seed}.tsv"
    params:
        data=TRAIN.data_dir,
        features=TRAIN.features_arg,
        graphs=TRAIN.graphs_arg,
        run=TRAIN.params,
        out=TRAIN.out,
        init=TRAIN.init_arg,
    threads: TRAIN.threads
    resources:
        mem_mb=TRAIN.mem_mb,
        runtime=TRAIN.runtime,
        slurm_extra=TRAIN.slurm_extra,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} train run --data {params.data:q} {params.features} {params.graphs}"
        " --model {wildcards.model} --variant {wildcards.variant:q} --seed {wildcards.seed}"
        " --params {params.run:q} --out {params.out:q} --threads {threads} {params.init}"


rule pretrain:
    input:
        TRAIN.pretrain_inputs,
    output:
        model="results/pretrain/{model}/{dataset}/model.pt",
        metrics="results/pretrain/{model}/{dataset}/metrics.json",
    wildcard_constraints:
        model="|".join(PRETRAINABLE),
    log:
        "logs/pretrain/{model}/{dataset}.log",
    benchmark:
        "logs/benchmarks/pretrain/{model}/{dataset}.tsv"
    params:
        sources=TRAIN.pretrain_sources_arg,
        run=TRAIN.pretrain_params,
        seed=TRAIN.pretrain_seed,
        out=TRAIN.pretrain_out,
    threads: 4
    resources:
        mem_mb=16000,
        runtime=TRAIN.pretrain_runtime,
        slurm_extra=TRAIN.slurm_extra,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} train pretrain --model {wildcards.model} {params.sources}"
        " --params {params.run:q} --seed {params.seed} --out {params.out:q} --threads {threads}"
