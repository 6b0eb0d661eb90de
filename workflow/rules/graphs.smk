# Rules of the graphs stage (see docs/architecture.md): spec §1 artefacts.
#   cooccurrence   results/<ds>/graphs/cooccurrence.npz            (training parts of the split)
#   modal_graph    results/<ds>/graphs/<fset>/<m>_H<H>_m<mu_m>_o<mu_o>.npz (+ .json build statistics)
#   centres        results/<ds>/graphs/<fset>/<m>_centres_k<k>_s<seed>.npz
#   graph_summary  results/<ds>/graphs/<fset>/summary_H<H>_m<mu_m>_o<mu_o>_k<k>.json
# Outputs are keyed by every parameter, so a sweep rebuilds only what changed.
# `<m>` is a configured modality or `fused` (all modalities, rows normalised and
# concatenated: the w/o MUL ablation); `<fset>` is `clean` or `<m>@noise<r>`.
# Other stages ask `GRAPHS.graph_files(dataset, fset, settings)` for the paths a run reads.
# Input/params helpers: sgp4sr.graphs.rules (GRAPHS, built in common.smk); names: sgp4sr.layout.

rule cooccurrence:
    input:
        unpack(GRAPHS.split_inputs),
    output:
        "results/{dataset}/graphs/cooccurrence.npz",
    log:
        "logs/graphs/{dataset}.cooccurrence.log",
    benchmark:
        "logs/benchmarks/graphs/{dataset}.cooccurrence.tsv"
    params:
        data=GRAPHS.split_dir,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} graphs cooccurrence --data {params.data:q} --out {output:q}"


rule modal_graph:
    input:
        cooccurrence="results/{dataset}/graphs/cooccurrence.npz",
        features=GRAPHS.modal_graph_features,
    output:
        graph="results/{dataset}/graphs/{fset}/{modality}_H{H}_m{mu_m}_o{mu_o}.npz",
        stats="results/{dataset}/graphs/{fset}/{modality}_H{H}_m{mu_m}_o{mu_o}.json",
    wildcard_constraints:
        **GRAPH_WILDCARDS,
    log:
        "logs/graphs/{dataset}/{fset}/{modality}_H{H}_m{mu_m}_o{mu_o}.log",
    benchmark:
        "logs/benchmarks/graphs/{dataset}/{fset}/{modality}_H{H}_m{mu_m}_o{mu_o}.tsv"
    # one thread: two buy 1.4x on Baby's graphs (12.3 s -> 8.8 s, benchmarks/bench_graphs.py), and a job
    # that waits for two cores idles the DAG behind it while one-thread training jobs run
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} graphs modal-graph --cooccurrence {input.cooccurrence:q} --features {input.features:q}"
        " --modality {wildcards.modality} --H {wildcards.H} --mu-m {wildcards.mu_m} --mu-o {wildcards.mu_o}"
        " --threads {threads} --out {output.graph:q} --stats {output.stats:q}"


rule centres:
    input:
        features=GRAPHS.modal_graph_features,
    output:
        "results/{dataset}/graphs/{fset}/{modality}_centres_k{k}_s{seed}.npz",
    wildcard_constraints:
        **GRAPH_WILDCARDS,
    log:
        "logs/graphs/{dataset}/{fset}/{modality}_centres_k{k}_s{seed}.log",
    benchmark:
        "logs/benchmarks/graphs/{dataset}/{fset}/{modality}_centres_k{k}_s{seed}.tsv"
    params:
        kmeans=GRAPHS.kmeans,
    # one thread: two buy 1.1x on Baby's 50 centres per modality (1.66 s -> 1.46 s, benchmarks/bench_graphs.py)
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} graphs centres --features {input.features:q} --k {wildcards.k}"
        " --seed {wildcards.seed} --kmeans {params.kmeans} --threads {threads} --out {output:q}"


rule graph_summary:
    input:
        unpack(GRAPHS.summary_inputs),
    output:
        "results/{dataset}/graphs/{fset}/summary_H{H}_m{mu_m}_o{mu_o}_k{k}.json",
    wildcard_constraints:
        **GRAPH_WILDCARDS,
    log:
        "logs/graphs/{dataset}/{fset}/summary_H{H}_m{mu_m}_o{mu_o}_k{k}.log",
    benchmark:
        "logs/benchmarks/graphs/{dataset}/{fset}/summary_H{H}_m{mu_m}_o{mu_o}_k{k}.tsv"
    params:
        centres=GRAPHS.summary_centres_arg,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} graphs summary --cooccurrence {input.cooccurrence:q}"
        " --graph-stats {input.stats:q} {params.centres} --out {output:q}"
