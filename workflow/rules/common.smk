# Shared helpers of the workflow: config validation, path builders and the
# target list of `all`. Rules in the stage files call these small named
# functions for their inputs and params instead of inline lambdas.
import json
from pathlib import Path

from sgp4sr.config import (ConfigError, dataset_model, dataset_training, pretraining_settings, pretraining_sources,
                           pretrains, run_training_settings, validate_config)
from sgp4sr.models.registry import model_requires
from sgp4sr.report.plan import report_targets
from sgp4sr.variants import format_number, parse_variant

try:
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
except ConfigError as _error:
    raise WorkflowError(str(_error)) from None


RESOURCES = config.get("resources_dir", "resources")
SEED = int(config.get("seed", 2026))
# torch threads per training job (`train_threads`): the demo's small models run faster as parallel
# one-thread jobs than as one multi-thread job at a time
TRAIN_THREADS = int(config.get("train_threads", 4))
DATASETS = list(config["run"]["datasets"])


wildcard_constraints:
    dataset="[A-Za-z0-9_\-]+",
    modality="[A-Za-z0-9_]+",
    model="[A-Za-z0-9_]+",
    seed="[0-9]+",


def dataset_cfg(dataset):
    return config["datasets"][dataset]


def source_of(dataset):
    return dataset_cfg(dataset)["source"]


def download_dir(dataset):
    return f"{RESOURCES}/downloads/{dataset}"


def data_dir(dataset):
    return f"results/{dataset}/data"


def modalities(dataset):
    return list(dataset_cfg(dataset).get("modalities", {}))


def as_json(obj):
    """Params are passed to `sgp4sr` commands as one JSON string, quoted by the rule."""
    return json.dumps(obj, sort_keys=True)


def all_targets():
    """Everything `all` builds: each selected dataset's stats and the report's tables and figures
    (which pull in features, graphs and runs)."""
    targets = []
    for ds in DATASETS:
        targets.append(f"{data_dir(ds)}/stats.json")
    targets += report_targets(config)  # tables, figures, tuning (sgp4sr.report.plan)
    return targets


# ---- graphs stage: paths and inputs (rules in graphs.smk) ----


GRAPH_DEFAULTS = {"knn_k": 10, "mu_m": 2.5, "mu_o": 0.3, "centres": 50, "kmeans": "code"}
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


# ---- train stage: paths, inputs and params (rule in train.smk) ----

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
    if wildcards.model == "iisan":
        inputs["iisan_hidden"] = iisan_cache_file(ds)
    if pretrains(config, wildcards.model, ds):
        inputs["pretrained"] = pretrained_file(wildcards.model, ds)
    return inputs


def iisan_cache_file(dataset):
    """IISAN's cache of the frozen encoders' hidden states (rule iisan_cache)."""
    return f"{train_features_dir(dataset)}/iisan_hidden.npz"


def iisan_cache_inputs(wildcards):
    """The item table, plus the image features job, which fills the image cache the encoder reads."""
    ds = wildcards.dataset
    inputs = {"item_table": f"{data_dir(ds)}/items.parquet"}
    if "image" in modalities(ds):
        inputs["image_features"] = f"{train_features_dir(ds)}/image.npy"
    return inputs


def iisan_images_dir(wildcards):
    return f"{RESOURCES}/images/{wildcards.dataset}"


def iisan_downloads_dir(wildcards):
    return download_dir(wildcards.dataset)


def iisan_pretrained_arg(wildcards):
    tag = dataset_model(config, wildcards.dataset, "iisan").get("image_pretrained")
    return f"--image-pretrained {tag}" if tag else ""


def train_params(wildcards):
    """The resolved run settings as JSON: engine config with the variant's overrides, model hyper-parameters."""
    ds = wildcards.dataset
    training = {**run_training_settings(config, ds, wildcards.model), **_variant(wildcards).training_overrides()}
    model = dataset_model(config, ds, wildcards.model)
    if wildcards.model == "iisan":
        model["hidden_states"] = iisan_cache_file(ds)
    params = {"dataset": ds, "training": training, "model": model,
              "modalities": modalities(ds), "centres_seed": SEED}
    if _requires(wildcards) & GRAPH_ROLES:
        params["graphs"] = graph_settings(ds)  # the run applies the variant's graph overrides itself
    if pretrains(config, wildcards.model, ds):
        params["finetune"] = {"freeze_encoder": pretraining_settings(config)["freeze_encoder"]}
    return as_json(params)


def train_features_arg(wildcards):
    return f"--features {train_features_dir(wildcards.dataset)}" if "features" in _requires(wildcards) else ""


def train_graphs_arg(wildcards):
    return f"--graphs {train_graphs_dir(wildcards.dataset)}" if _requires(wildcards) & GRAPH_ROLES else ""


def train_init_arg(wildcards):
    """`--init <pre-trained weights>` when this model is pre-trained for this dataset (config `pretraining`)."""
    ds = wildcards.dataset
    return f"--init {pretrained_file(wildcards.model, ds)}" if pretrains(config, wildcards.model, ds) else ""


def train_out(wildcards):
    return run_dir(wildcards.dataset, wildcards.model, wildcards.variant, wildcards.seed)


def train_runtime(wildcards):
    """Minutes for a scheduler: the demo is small, the paper's datasets on a CPU are not."""
    return 60 if source_of(wildcards.dataset) == "demo" else 24 * 60


def train_slurm_extra(wildcards):
    """One GPU per training job on SLURM only when the config asks for it (`slurm_gpu: true`)."""
    return "--gres=gpu:1" if config.get("slurm_gpu", False) else ""


# ---- pretraining: cross-domain pre-training of missrec / unisrec (rule pretrain in train.smk) ----

#: pretraining keys the loop reads (the rest choose models, sources, seed and fine-tuning)
PRETRAIN_LOOP_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "seq_seq_weight", "item_drop_ratio", "device",
                      "model_overrides")


def pretrained_file(model, dataset):
    """Weights of `model` pre-trained on the sources of target `dataset` (no ID-sized tensors)."""
    return f"results/pretrain/{model}/{dataset}/model.pt"


def pretrain_inputs(wildcards):
    """Each source's split files and clean feature matrices (a list: dataset names may hold '-')."""
    inputs = []
    for src in pretraining_sources(config, wildcards.dataset):
        inputs += [f"{data_dir(src)}/{name}" for name in SPLIT_FILES]
        inputs += [f"{train_features_dir(src)}/{m}.npy" for m in modalities(src)]
    return inputs


def pretrain_sources_arg(wildcards):
    return " ".join(f"--source {src} {data_dir(src)} {train_features_dir(src)}"
                    for src in pretraining_sources(config, wildcards.dataset))


def pretrain_params(wildcards):
    """The target's model hyper-parameters (the shapes must match at fine-tuning) and the loop settings."""
    settings = pretraining_settings(config)
    ds = wildcards.dataset
    return as_json({"model": dataset_model(config, ds, wildcards.model), "modalities": modalities(ds),
                    "max_len": dataset_training(config, ds)["max_len"],
                    "pretraining": {k: settings[k] for k in PRETRAIN_LOOP_KEYS}})


def pretrain_seed(wildcards):
    seed = pretraining_settings(config)["seed"]
    return SEED if seed is None else int(seed)


def pretrain_out(wildcards):
    return f"results/pretrain/{wildcards.model}/{wildcards.dataset}"


def pretrain_runtime(wildcards):
    """Minutes for a scheduler: demo sources are small, the paper's are not."""
    demo = all(source_of(s) == "demo" for s in pretraining_sources(config, wildcards.dataset))
    return 60 if demo else 24 * 60
