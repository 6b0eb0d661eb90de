# Rules of the train stage (see docs/architecture.md).
#   train   results/<ds>/runs/<model>/<variant>/seed<seed>/{metrics.json,ranks.parquet,model.pt}
# A run reads the split, and only the features/graphs its model requires
# (sgp4sr.models.registry.REQUIRES, read without importing torch) for the
# variant's feature set and graph settings. While it runs, checkpoint.pt in the
# run folder lets a rerun of a killed job resume from its last epoch.
# `run_metrics(dataset, model, variant, seeds)` lists metrics files for the report.
from sgp4sr.models.registry import model_requires
from sgp4sr.variants import parse_variant

SPLIT_FILES = ("items.parquet", "users.parquet", "train.inter", "valid.inter", "test.inter")
GRAPH_ROLES = {"cooccurrence", "modal_graphs", "centres"}


def train_features_dir(dataset):
    return f"results/{dataset}/features"


def train_graphs_dir(dataset):
    return f"results/{dataset}/graphs"


def run_dir(dataset, model, variant, seed):
    return f"results/{dataset}/runs/{model}/{variant}/seed{seed}"


def run_metrics(dataset, model, variant, seeds):
    """metrics.json of every seed of one (dataset, model, variant): what the report stage reads."""
    return [f"{run_dir(dataset, model, variant, s)}/metrics.json" for s in seeds]


def _variant(wildcards):
    try:
        return parse_variant(wildcards.variant)
    except ValueError as error:
        raise WorkflowError(str(error)) from None


def _requires(wildcards):
    try:
        return set(model_requires(wildcards.model))
    except KeyError as error:
        raise WorkflowError(str(error)) from None


def _graph_files(wildcards):
    """graph_files() of the graph stage for this run's feature set, settings and modalities."""
    variant = _variant(wildcards)
    settings = variant.graph_settings(graph_settings(wildcards.dataset))
    mods = [FUSED_MODALITY] if "wo_mul" in variant.ablations else None
    return graph_files(wildcards.dataset, variant.fset, settings, mods)


def train_inputs(wildcards):
    """The split files, plus the feature and graph files the model requires."""
    ds, requires = wildcards.dataset, _requires(wildcards)
    inputs = {f"split_{name.split('.')[0]}": f"{data_dir(ds)}/{name}" for name in SPLIT_FILES}
    if requires and not modalities(ds):
        raise WorkflowError(f"model {wildcards.model!r} needs item features but dataset {ds!r} has no modalities")
    if "features" in requires:
        fset = _variant(wildcards).fset
        noisy = None if fset == "clean" else fset.split("@", 1)[0]
        for m in modalities(ds):
            inputs[f"features_{m}"] = f"{train_features_dir(ds)}/{fset if m == noisy else m}.npy"
    if requires & GRAPH_ROLES:
        for role, path in _graph_files(wildcards).items():
            wanted = ("cooccurrence" if role == "cooccurrence"
                      else "modal_graphs" if role.startswith("graph_") else "centres")
            if wanted in requires:
                inputs[role] = path
    return inputs


def train_params(wildcards):
    """The resolved run settings as JSON: engine config with the variant's overrides, model hyper-parameters."""
    ds = wildcards.dataset
    training = {**dataset_training(config, ds), **_variant(wildcards).training_overrides()}
    params = {"dataset": ds, "training": training, "model": dataset_model(config, ds, wildcards.model),
              "modalities": modalities(ds), "centres_seed": SEED}
    if _requires(wildcards) & GRAPH_ROLES:
        params["graphs"] = graph_settings(ds)  # the run applies the variant's graph overrides itself
    return as_json(params)


def train_features_arg(wildcards):
    return f"--features {train_features_dir(wildcards.dataset)}" if "features" in _requires(wildcards) else ""


def train_graphs_arg(wildcards):
    return f"--graphs {train_graphs_dir(wildcards.dataset)}" if _requires(wildcards) & GRAPH_ROLES else ""


def train_out(wildcards):
    return run_dir(wildcards.dataset, wildcards.model, wildcards.variant, wildcards.seed)


def train_runtime(wildcards):
    """Minutes for a scheduler: the demo is small, the paper's datasets on a CPU are not."""
    return 60 if source_of(wildcards.dataset) == "demo" else 24 * 60


def train_slurm_extra(wildcards):
    """One GPU per training job on SLURM only when the config asks for it (`slurm_gpu: true`)."""
    return "--gres=gpu:1" if config.get("slurm_gpu", False) else ""


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics="results/{dataset}/runs/{model}/{variant}/seed{seed}/metrics.json",
        ranks="results/{dataset}/runs/{model}/{variant}/seed{seed}/ranks.parquet",
        model="results/{dataset}/runs/{model}/{variant}/seed{seed}/model.pt",
    wildcard_constraints:
        variant=r"[A-Za-z0-9_.~+@\-]+",
    log:
        "logs/train/{dataset}/{model}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/snakemake/train/{dataset}/{model}/{variant}/seed{seed}.tsv"
    params:
        data="results/{dataset}/data",
        features=train_features_arg,
        graphs=train_graphs_arg,
        run=train_params,
        out=train_out,
    threads: 4
    resources:
        mem_mb=16000,
        runtime=train_runtime,
        slurm_extra=train_slurm_extra,
    conda:
        "../envs/sgp4sr.yaml"
    shell:
        "sgp4sr --log {log} train run --data {params.data:q} {params.features} {params.graphs}"
        " --model {wildcards.model} --variant {wildcards.variant:q} --seed {wildcards.seed}"
        " --params {params.run:q} --out {params.out:q} --threads {threads}"
