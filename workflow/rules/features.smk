# Rules of the features stage (see docs/architecture.md).
# One `features` job per dataset and modality writes <modality>.npy and
# <modality>.manifest.parquet; `feature_manifest` joins the per-modality
# manifests into manifest.parquet; `feature_noise` derives
# <modality>@noise<ratio>.npy. Input/params helpers: sgp4sr.features.rules
# (FEATURES.targets(dataset) lists everything for `all`). An image job's inputs
# include the raw local images (FEATURES.image_inputs), and its image cache is
# keyed by each source's content, so changed images are re-read.
from sgp4sr.features.rules import FeatureRules

FEATURES = FeatureRules(config, RESOURCES)


rule features:
    input:
        item_table="results/{dataset}/data/items.parquet",
        source=FEATURES.source_input,
        images=FEATURES.image_inputs,
    output:
        features="results/{dataset}/features/{modality}.npy",
        manifest="results/{dataset}/features/{modality}.manifest.parquet",
    log:
        "logs/features/{dataset}.{modality}.log",
    benchmark:
        "logs/benchmarks/features/{dataset}.{modality}.tsv"
    params:
        config=FEATURES.config_json,
        source=FEATURES.source_arg,
        downloads=FEATURES.download_dir,
        cache=FEATURES.cache_dir,
        seed=SEED,
    threads: 4
    resources:
        mem_mb=FEATURES.mem_mb,
        runtime=FEATURES.runtime,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} features encode --items {input.item_table:q} --modality {wildcards.modality}"
        " --config {params.config:q} {params.source}"
        " --download-dir {params.downloads:q} --cache-dir {params.cache:q} --seed {params.seed}"
        " --threads {threads} --no-progress"
        " --out {output.features:q} --manifest-out {output.manifest:q}"


rule feature_manifest:
    input:
        FEATURES.manifest_inputs,
    output:
        "results/{dataset}/features/manifest.parquet",
    log:
        "logs/features/{dataset}.manifest.log",
    benchmark:
        "logs/benchmarks/features/{dataset}.manifest.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} features manifest {input:q} --out {output:q}"


rule feature_noise:
    input:
        "results/{dataset}/features/{modality}.npy",
    output:
        "results/{dataset}/features/{modality}@noise{ratio}.npy",
    wildcard_constraints:
        ratio=r"[0-9]+(\.[0-9]+)?",
    log:
        "logs/features/{dataset}.{modality}@noise{ratio}.log",
    benchmark:
        "logs/benchmarks/features/{dataset}.{modality}@noise{ratio}.tsv"
    params:
        seed=SEED,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} features noise --features {input:q} --modality {wildcards.modality}"
        " --ratio {wildcards.ratio} --seed {params.seed} --out {output:q}"


rule iisan_cache:
    input:
        unpack(FEATURES.iisan_inputs),
    output:
        "results/{dataset}/features/iisan_hidden.npz",
    log:
        "logs/features/{dataset}.iisan_cache.log",
    benchmark:
        "logs/benchmarks/features/{dataset}.iisan_cache.tsv"
    params:
        cache=FEATURES.cache_dir,
        downloads=FEATURES.download_dir,
        pretrained=FEATURES.iisan_pretrained_arg,
        seed=SEED,
    threads: 4
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} features iisan-cache --items {input.item_table:q} --images {params.cache:q}"
        " --downloads {params.downloads:q} --out {output:q} --seed {params.seed} {params.pretrained}"
