# Rules of the graphs stage (see docs/architecture.md): spec §1 artefacts.
#   cooccurrence   results/<ds>/graphs/cooccurrence.npz            (training parts of the split)
#   modal_graph    results/<ds>/graphs/<fset>/<m>_H<H>_m<mu_m>_o<mu_o>.npz (+ .json build statistics)
#   centres        results/<ds>/graphs/<fset>/<m>_centres_k<k>_s<seed>.npz
#   graph_summary  results/<ds>/graphs/<fset>/summary_H<H>_m<mu_m>_o<mu_o>_k<k>.json
# Outputs are keyed by every parameter, so a sweep rebuilds only what changed.
# `<m>` is a configured modality or `fused` (all modalities, rows normalised and
# concatenated: the w/o MUL ablation); `<fset>` is `clean` or `<m>@noise<r>`.
# Other stages ask `graph_files(dataset, fset, settings)` for the paths a run reads.
from sgp4sr.variants import format_number

GRAPH_DEFAULTS = {"knn_k": 10, "mu_m": 2.5, "mu_o": 0.3, "centres": 50}
FUSED_MODALITY = "fused"
GRAPH_WILDCARDS = {
    "fset": r"clean|[A-Za-z0-9_]+@noise[0-9.]+",
    "H": r"[0-9]+",
    "mu_m": r"[0-9.]+(?:e[+-]?[0-9]+)?",
    "mu_o": r"[0-9.]+(?:e[+-]?[0-9]+)?",
    "k": r"[0-9]+",
}


def graphs_dir(dataset):
    return f"results/{dataset}/graphs"


def graph_settings(dataset):
    """The dataset's `graphs` config over the defaults (knn_k, mu_m, mu_o, centres)."""
    return {**GRAPH_DEFAULTS, **dataset_cfg(dataset).get("graphs", {})}


def graph_feature_files(dataset, fset, modality):
    """Feature matrices of `modality` in feature set `fset` (all modalities for `fused`)."""
    mods = modalities(dataset)
    noisy = None if fset == "clean" else fset.split("@", 1)[0]
    if noisy is not None and noisy not in mods:
        raise WorkflowError(f"feature set {fset!r}: dataset {dataset!r} has no modality {noisy!r}; configured: {mods}")
    if modality == FUSED_MODALITY:
        if not mods:
            raise WorkflowError(f"dataset {dataset!r} has no modalities to fuse")
        chosen = mods
    elif modality in mods:
        chosen = [modality]
    else:
        raise WorkflowError(
            f"dataset {dataset!r} has no modality {modality!r}; configured: {mods} (or {FUSED_MODALITY!r})"
        )
    return [f"results/{dataset}/features/{fset if m == noisy else m}.npy" for m in chosen]


def graph_stem(modality, settings):
    return (f"{modality}_H{int(settings['knn_k'])}_m{format_number(settings['mu_m'])}"
            f"_o{format_number(settings['mu_o'])}")


def centres_file(dataset, fset, modality, k, seed=SEED):
    return f"{graphs_dir(dataset)}/{fset}/{modality}_centres_k{int(k)}_s{int(seed)}.npz"


def graph_files(dataset, fset="clean", settings=None, mods=None, seed=SEED):
    """Paths a run reads: `cooccurrence`, `graph_<m>` and (k > 0) `centres_<m>` for each modality.

    `settings` is a dataset `graphs` dict (e.g. `Variant.graph_settings(...)`),
    `mods` defaults to the dataset's modalities (pass ["fused"] for w/o MUL).
    """
    settings = {**graph_settings(dataset), **(settings or {})}
    mods = modalities(dataset) if mods is None else list(mods)
    files = {"cooccurrence": f"{graphs_dir(dataset)}/cooccurrence.npz"}
    for m in mods:
        files[f"graph_{m}"] = f"{graphs_dir(dataset)}/{fset}/{graph_stem(m, settings)}.npz"
        if int(settings["centres"]) > 0:
            files[f"centres_{m}"] = centres_file(dataset, fset, m, settings["centres"], seed)
    return files


def graph_summary_file(dataset, fset="clean", settings=None):
    s = {**graph_settings(dataset), **(settings or {})}
    return (f"{graphs_dir(dataset)}/{fset}/summary_H{int(s['knn_k'])}_m{format_number(s['mu_m'])}"
            f"_o{format_number(s['mu_o'])}_k{int(s['centres'])}.json")


def graph_targets(dataset):
    """The default summary (clean features) of a dataset with modalities; nothing otherwise."""
    return [graph_summary_file(dataset)] if modalities(dataset) else []


def graph_split_inputs(wildcards):
    folder = data_dir(wildcards.dataset)
    return {
        name: f"{folder}/{name}"
        for name in ("items.parquet", "users.parquet", "train.inter", "valid.inter", "test.inter")
    }


def graph_split_dir(wildcards):
    return data_dir(wildcards.dataset)


def modal_graph_features(wildcards):
    return graph_feature_files(wildcards.dataset, wildcards.fset, wildcards.modality)


def _summary_settings(wildcards):
    return {"knn_k": wildcards.H, "mu_m": wildcards.mu_m, "mu_o": wildcards.mu_o, "centres": wildcards.k}


def graph_summary_inputs(wildcards):
    settings = _summary_settings(wildcards)
    stems = [f"{graphs_dir(wildcards.dataset)}/{wildcards.fset}/{graph_stem(m, settings)}"
             for m in modalities(wildcards.dataset)]
    inputs = {"cooccurrence": f"{graphs_dir(wildcards.dataset)}/cooccurrence.npz",
              "stats": [f"{s}.json" for s in stems]}
    if int(wildcards.k) > 0:
        inputs["centres"] = [centres_file(wildcards.dataset, wildcards.fset, m, wildcards.k)
                             for m in modalities(wildcards.dataset)]
    return inputs


def graph_summary_centres_arg(wildcards, input):
    return "--centres " + " ".join(input.centres) if int(wildcards.k) > 0 else ""


rule cooccurrence:
    input:
        unpack(graph_split_inputs),
    output:
        "results/{dataset}/graphs/cooccurrence.npz",
    log:
        "logs/graphs/{dataset}.cooccurrence.log",
    benchmark:
        "benchmarks/snakemake/graphs/{dataset}.cooccurrence.tsv"
    params:
        data=graph_split_dir,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "sgp4sr --log {log} graphs cooccurrence --data {params.data:q} --out {output:q}"


rule modal_graph:
    input:
        cooccurrence="results/{dataset}/graphs/cooccurrence.npz",
        features=modal_graph_features,
    output:
        graph="results/{dataset}/graphs/{fset}/{modality}_H{H}_m{mu_m}_o{mu_o}.npz",
        stats="results/{dataset}/graphs/{fset}/{modality}_H{H}_m{mu_m}_o{mu_o}.json",
    wildcard_constraints:
        **GRAPH_WILDCARDS,
    log:
        "logs/graphs/{dataset}/{fset}/{modality}_H{H}_m{mu_m}_o{mu_o}.log",
    benchmark:
        "benchmarks/snakemake/graphs/{dataset}/{fset}/{modality}_H{H}_m{mu_m}_o{mu_o}.tsv"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "sgp4sr --log {log} graphs modal-graph --cooccurrence {input.cooccurrence:q} --features {input.features:q}"
        " --modality {wildcards.modality} --H {wildcards.H} --mu-m {wildcards.mu_m} --mu-o {wildcards.mu_o}"
        " --threads {threads} --out {output.graph:q} --stats {output.stats:q}"


rule centres:
    input:
        features=modal_graph_features,
    output:
        "results/{dataset}/graphs/{fset}/{modality}_centres_k{k}_s{seed}.npz",
    wildcard_constraints:
        **GRAPH_WILDCARDS,
    log:
        "logs/graphs/{dataset}/{fset}/{modality}_centres_k{k}_s{seed}.log",
    benchmark:
        "benchmarks/snakemake/graphs/{dataset}/{fset}/{modality}_centres_k{k}_s{seed}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "sgp4sr --log {log} graphs centres --features {input.features:q} --k {wildcards.k}"
        " --seed {wildcards.seed} --threads {threads} --out {output:q}"


rule graph_summary:
    input:
        unpack(graph_summary_inputs),
    output:
        "results/{dataset}/graphs/{fset}/summary_H{H}_m{mu_m}_o{mu_o}_k{k}.json",
    wildcard_constraints:
        **GRAPH_WILDCARDS,
    log:
        "logs/graphs/{dataset}/{fset}/summary_H{H}_m{mu_m}_o{mu_o}_k{k}.log",
    benchmark:
        "benchmarks/snakemake/graphs/{dataset}/{fset}/summary_H{H}_m{mu_m}_o{mu_o}_k{k}.tsv"
    params:
        centres=graph_summary_centres_arg,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "sgp4sr --log {log} graphs summary --cooccurrence {input.cooccurrence:q}"
        " --graph-stats {input.stats:q} {params.centres} --out {output:q}"
