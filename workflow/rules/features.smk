# Rules of the features stage (see docs/architecture.md).
# One `features` job per dataset and modality writes <modality>.npy and
# <modality>.manifest.parquet; `feature_manifest` joins the per-modality
# manifests; `feature_noise` derives <modality>@noise<ratio>.npy.
from sgp4sr.features.build import resolve_modality, source_file_for
from sgp4sr.features.noise import DEFAULT_NOISE_RATIOS, noisy_name


def features_dir(dataset):
    return f"results/{dataset}/features"


def image_cache_dir(dataset):
    return f"{RESOURCES}/images/{dataset}"


def modality_cfg(dataset, modality):
    mods = dataset_cfg(dataset).get("modalities", {})
    if modality not in mods:
        raise WorkflowError(
            f"dataset {dataset!r} has no modality {modality!r}; configured: {', '.join(mods) or 'none'}"
        )
    return resolve_modality(mods[modality])


def noise_ratios(dataset):
    return list(dataset_cfg(dataset).get("noise_ratios", DEFAULT_NOISE_RATIOS))


def feature_targets(dataset):
    """Clean matrices, the manifest and every configured noise variant of `dataset`."""
    out = features_dir(dataset)
    targets = [f"{out}/manifest.parquet"]
    for modality in modalities(dataset):
        targets.append(f"{out}/{modality}.npy")
        targets += [f"{out}/{noisy_name(modality, r)}.npy" for r in noise_ratios(dataset)]
    return targets


def feature_source(wildcards):
    """The .b / .npy file a published or benchmark modality reads ("" for the encoders)."""
    modality_cfg(wildcards.dataset, wildcards.modality)
    path = source_file_for(dataset_cfg(wildcards.dataset), wildcards.modality, download_dir(wildcards.dataset))
    return path or ""


def feature_source_input(wildcards):
    path = feature_source(wildcards)
    return [path] if path else []


def feature_download_dir(wildcards):
    return download_dir(wildcards.dataset)


def feature_cache_dir(wildcards):
    return image_cache_dir(wildcards.dataset)


def feature_config_json(wildcards):
    return as_json(modality_cfg(wildcards.dataset, wildcards.modality))


def feature_mem_mb(wildcards):
    # published: the kept 4096-d rows (~380 MB on Clothing) plus the read buffer.
    encoder = modality_cfg(wildcards.dataset, wildcards.modality)["encoder"]
    return {"sentence": 4000, "clip": 6000, "published": 4000, "benchmark": 2000}[encoder]


def feature_runtime(wildcards):
    # minutes; CLIP on images dominates (downloads + a ViT per image on a CPU).
    cfg = modality_cfg(wildcards.dataset, wildcards.modality)
    if cfg["encoder"] == "clip":
        return 240 if cfg["input"] == "image" else 60
    return {"sentence": 60, "published": 120, "benchmark": 10}[cfg["encoder"]]


def feature_manifest_inputs(wildcards):
    out = features_dir(wildcards.dataset)
    return [f"{out}/{m}.manifest.parquet" for m in modalities(wildcards.dataset)]


rule features:
    input:
        items="results/{dataset}/data/items.parquet",
        source=feature_source_input,
    output:
        features="results/{dataset}/features/{modality}.npy",
        manifest="results/{dataset}/features/{modality}.manifest.parquet",
    log:
        "logs/features/{dataset}.{modality}.log",
    benchmark:
        "benchmarks/snakemake/features/{dataset}.{modality}.tsv"
    params:
        config=feature_config_json,
        source=feature_source,
        downloads=feature_download_dir,
        cache=feature_cache_dir,
        seed=SEED,
    threads: 4
    resources:
        mem_mb=feature_mem_mb,
        runtime=feature_runtime,
    shell:
        "sgp4sr --log {log} features encode --items {input.items} --modality {wildcards.modality}"
        " --config {params.config:q} --source-file {params.source:q}"
        " --download-dir {params.downloads:q} --cache-dir {params.cache:q} --seed {params.seed}"
        " --threads {threads} --no-progress"
        " --out {output.features} --manifest-out {output.manifest}"


rule feature_manifest:
    input:
        feature_manifest_inputs,
    output:
        "results/{dataset}/features/manifest.parquet",
    log:
        "logs/features/{dataset}.manifest.log",
    benchmark:
        "benchmarks/snakemake/features/{dataset}.manifest.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "sgp4sr --log {log} features manifest {input} --out {output}"


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
        "benchmarks/snakemake/features/{dataset}.{modality}@noise{ratio}.tsv"
    params:
        seed=SEED,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "sgp4sr --log {log} features noise --features {input} --modality {wildcards.modality}"
        " --ratio {wildcards.ratio} --seed {params.seed} --out {output}"
