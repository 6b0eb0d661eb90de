"""What a config costs before it runs: training runs per experiment and an estimate of compute hours.

The runs come from :mod:`sgp4sr.report.plan`, the functions the workflow's
``all`` target is built from, so the counts are the runs Snakemake would train
(a run shared by two experiments, e.g. the ``default`` run that is also
Figure 3's ratio 0, is counted where it first appears). The hours come from a
small table of *measured* seconds per epoch (:data:`MEASUREMENTS`, each with the
machine and the document it was read from), scaled to a run's dataset and width:

* training seconds per epoch ~ ``targets * d * (items + 12 * layers * d)``, the
  FLOPs of the full-softmax scoring (``items * d`` per target) and of a
  ``layers``-block Transformer (``12 d^2`` per block) per training target;
  one full validation ranking per epoch ~ ``users * d * (items + 12 * layers * d)``;
* a model other than SASRec costs its ratio to SASRec measured in the same run
  (:attr:`Measurement.ratio`), else the engine's job-sizing estimate
  (:data:`sgp4sr.engine.resources.SECONDS_PER_TARGET`, not a measurement);
* every measurement is of the one-pass training form; a run in the prefix form
  (``train_form: prefix``, e.g. BERT4Rec's default) costs its model's
  prefix/one-pass ratio measured in the same run (:attr:`Measurement.prefix_ratio`:
  SASRec 2.2x, GRU4Rec 1.5x, BERT4Rec 3.6x, SGP4SR 1.07x at d = 300 on Baby);
* a run lasts at most ``training.epochs`` epochs; early stopping usually ends it
  far sooner, so an "expected" figure assumes :data:`EXPECTED_EPOCHS`.

Every measurement here is a CPU measurement (one torch thread on a shared
2-core machine): there is no GPU measurement of this code yet
(``benchmarks/gpu.py`` is prepared for one). GPU hours are the CPU hours divided
by :data:`sgp4sr.engine.resources.GPU_SPEEDUP`, an assumption, and are labelled
so. Variants (ablations, noise, k, grid points) are priced as their model's
default run; ``w/o CIP`` and small ``k`` are cheaper, ``k = 100`` dearer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from sgp4sr import layout
from sgp4sr.config import dataset_model, pretraining_settings, pretraining_sources, pretrains, run_training_settings
from sgp4sr.engine.resources import GPU_SPEEDUP, SECONDS_PER_TARGET
from sgp4sr.engine.settings import TrainConfig
from sgp4sr.report import plan

#: epochs a run is assumed to last under early stopping (patience 10): the converged Baby runs stopped after
#: 14 (SASRec), 19 (BERT4Rec) and 21 (GRU4Rec) epochs (docs/results.md, "Issue 6 real-data check")
EXPECTED_EPOCHS = 25
#: the released code's training epoch on a Baby-size split on a GPU (issue 14; the GPU is not named): a reference
AUTHORS_GPU_EPOCH_S = 290.0
GPU_ASSUMPTION = (f"GPU hours = CPU hours / {GPU_SPEEDUP:g}: an assumption (sgp4sr.engine.resources.GPU_SPEEDUP, "
                  "the job-sizing factor, which errs high), not a measurement; measure one with benchmarks/gpu.py "
                  "and pass it as --gpu-speedup")


@dataclass(frozen=True)
class Measurement:
    """Seconds per epoch measured on one dataset at one width, on one machine."""

    name: str
    dataset: str
    users: int
    items: int                       #: real items (padding excluded)
    targets: int                     #: training targets per epoch
    hidden_size: int
    machine: str
    source: str
    train_s: Mapping[str, float]     #: model -> training seconds per epoch (measured)
    eval_s: Mapping[str, float]      #: model -> seconds of one full validation ranking (measured)
    #: model -> training cost relative to SASRec, measured in the same run (used where train_s has no entry)
    ratio: Mapping[str, float] = field(default_factory=dict)
    layers: int = 2
    #: model -> training seconds per epoch of the prefix form over the one-pass form (``train_s`` is one-pass),
    #: both measured in one run; a model without an entry costs SASRec's (the same rows, padded alike)
    prefix_ratio: Mapping[str, float] = field(default_factory=dict)


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(
        name="baby-d300-cpu", dataset="the authors' Baby split", users=19445, items=7050, targets=102457,
        hidden_size=300,
        machine="2-core CPU, one torch thread, nothing else running, 2026-12-01",
        source="benchmarks/bench_train.py --threads 1 --batches 10, batches of 256 targets, both forms (docs/results.md "
               "session 7: SASRec, GRU4Rec, BERT4Rec; SGP4SR's ratio to SASRec from session 6's run); the other "
               "models: their ratios to SASRec in older runs on this split (load 9-12, ~1,300 targets per batch)",
        train_s={"sasrec": 71.7, "gru4rec": 65.8, "bert4rec": 81.9},
        eval_s={"sasrec": 15.0, "gru4rec": 7.2, "bert4rec": 26.5},
        ratio={"sgp4sr": 1642.5 / 72.5, "fdsa": 1.0, "sasrecf": 1.0, "unisrec": 2.7, "iisan": 3.2, "hm4sr": 5.3,
               "missrec": 26.0, "mmmlp": 150.0},
        prefix_ratio={"sasrec": 156.8 / 71.7, "gru4rec": 100.8 / 65.8, "bert4rec": 291.1 / 81.9,
                      "sgp4sr": 1749.6 / 1642.5}),
    Measurement(
        name="demo-d64-cpu", dataset="the demo (config/config.yaml)", users=1975, items=710, targets=11548,
        hidden_size=64,
        machine="2-core CPU, one torch thread, beside 1-2 other jobs, 2026-12-01",
        source="docs/results.md, session 3, the demo's test-metrics table (SGP4SR at k = 8)",
        train_s={"sasrec": 0.6, "gru4rec": 0.4, "bert4rec": 0.8, "fdsa": 1.3, "sasrecf": 0.7, "sgp4sr": 6.2},
        eval_s={},
        #: bench_train.py --data results/demo/data --hidden 64 --batches 20, idle, session 7 (two runs: +-20 %)
        prefix_ratio={"sasrec": 2.317 / 1.181, "gru4rec": 0.98 / 0.631, "bert4rec": 5.087 / 1.37}),
)
#: validation ranking seconds relative to SASRec's where a measurement has none (session 6's bench_train run on
#: Baby: SGP4SR 125.8 s against SASRec's 12.6 s)
EVAL_RATIO = {"sgp4sr": 125.8 / 12.6}


@dataclass(frozen=True)
class Size:
    users: int
    items: int
    targets: int
    source: str


def _flops(rows: int, d: int, items: int, layers: int) -> float:
    return float(rows) * d * (items + 12 * layers * d)


def reference(hidden_size: int) -> Measurement:
    """The measurement of the nearest width (the cost per FLOP differs between small and large models)."""
    return min(MEASUREMENTS, key=lambda m: (abs(m.hidden_size - hidden_size), m.name))


def train_ratio(model: str, ref: Measurement) -> tuple[float, str]:
    """Training cost of ``model`` relative to SASRec on ``ref``, and where the number comes from."""
    if model in ref.train_s:
        return ref.train_s[model] / ref.train_s["sasrec"], "measured"
    if model in ref.ratio:
        return ref.ratio[model], "measured ratio"
    spt = SECONDS_PER_TARGET
    return spt.get(model, max(spt.values())) / spt["sasrec"], "engine estimate"


def epoch_seconds(model: str, size: Size, hidden_size: int, layers: int = 2,
                  train_form: str = "onepass") -> tuple[float, float]:
    """(training, validation) CPU seconds of one epoch of ``model`` trained in ``train_form`` on a dataset of
    ``size``."""
    ref = reference(hidden_size)
    layers = max(1, int(layers))
    scale_train = (_flops(size.targets, hidden_size, size.items, layers)
                   / _flops(ref.targets, ref.hidden_size, ref.items, ref.layers))
    train = ref.train_s["sasrec"] * train_ratio(model, ref)[0] * scale_train
    if train_form == "prefix":
        train *= ref.prefix_ratio.get(model, ref.prefix_ratio.get("sasrec", 1.0))
    base = reference(300) if not ref.eval_s else ref  # the Baby measurement is the only one with rankings
    scale_eval = (_flops(size.users, hidden_size, size.items, layers)
                  / _flops(base.users, base.hidden_size, base.items, base.layers))
    if model in base.eval_s:
        evaluation = base.eval_s[model] * scale_eval
    else:
        evaluation = base.eval_s["sasrec"] * EVAL_RATIO.get(model, train_ratio(model, base)[0]) * scale_eval
    return train, evaluation


def dataset_size(config: Mapping[str, Any], dataset: str, results: str | Path = ".") -> Size | None:
    """Users, items and training targets: the data stage's stats.json, else ``paper_stats``, else the demo's."""
    stats_path = Path(results) / layout.stats_file(dataset)
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        train = int(stats.get("train_interactions", stats["interactions"] - 2 * stats["users"]))
        return Size(int(stats["users"]), int(stats["items"]), train - int(stats["users"]), str(stats_path))
    cfg = config["datasets"][dataset]
    paper = cfg.get("paper_stats") or {}
    if {"users", "items", "interactions"} <= set(paper):
        # every user's events are training + validation + test; the first training item is no target
        users = int(paper["users"])
        return Size(users, int(paper["items"]), int(paper["interactions"]) - 3 * users, "paper_stats")
    if cfg["source"] == "demo":
        demo = next(m for m in MEASUREMENTS if m.name == "demo-d64-cpu")
        factor = cfg.get("demo", {}).get("n_users", 2000) / 2000
        return Size(round(demo.users * factor), demo.items, round(demo.targets * factor),
                    "measured demo, scaled by demo.n_users")
    return None


@dataclass
class Line:
    """One experiment's row of the plan."""

    name: str
    runs: int = 0
    new: int = 0
    cpu_max_h: float = 0.0
    cpu_expected_h: float = 0.0
    unsized: int = 0
    note: str = ""

    def count(self, hours: tuple[float, float] | None) -> None:
        """One new job of (at most, expected) CPU hours; None: its dataset's size is unknown."""
        self.new += 1
        if hours is None:
            self.unsized += 1
        else:
            self.cpu_max_h += hours[0]
            self.cpu_expected_h += hours[1]

    def add(self, other: "Line") -> None:
        self.new += other.new
        self.cpu_max_h += other.cpu_max_h
        self.cpu_expected_h += other.cpu_expected_h
        self.unsized += other.unsized


@dataclass
class Budget:
    lines: list[Line]
    sizes: dict[str, Size | None]
    by_model: dict[str, float]       #: model -> expected CPU hours of its new runs (all experiments)
    models_priced: dict[str, str]    #: model -> where its cost ratio comes from
    extra_jobs: list[str]

    @property
    def total(self) -> Line:
        total = Line("total")
        for line in self.lines:
            total.add(line)
        total.runs = total.new
        return total


def run_hours(config: Mapping[str, Any], run: tuple[str, str, str, int], size: Size | None) -> tuple[float, float] | None:
    """(at most, expected) CPU hours of one training run; None when the dataset's size is unknown."""
    dataset, model, _variant, _seed = run
    if size is None:
        return None
    settings = TrainConfig.from_dict(run_training_settings(config, dataset, model))
    params = dataset_model(config, dataset, model)
    d, layers = int(params.get("hidden_size", 64)), int(params.get("layers", 2))
    train, evaluation = epoch_seconds(model, size, d, layers, settings.train_form)
    per_epoch = train + evaluation
    finish = evaluation  # the test ranking of the best epoch
    return ((settings.epochs * per_epoch + finish) / 3600,
            (min(settings.epochs, EXPECTED_EPOCHS) * per_epoch + finish) / 3600)


def budget(config: Mapping[str, Any], results: str | Path = ".") -> Budget:
    """Runs per experiment (each run counted once, where it first appears) and their estimated CPU hours."""
    sizes = {ds: dataset_size(config, ds, results) for ds in plan.datasets(config)}
    seen: set[tuple[str, str, str, int]] = set()
    by_model: dict[str, float] = {}

    def line(name: str, runs: list[tuple[str, str, str, int]], note: str = "") -> Line:
        out = Line(name, runs=len(set(runs)), note=note)
        for run in dict.fromkeys(runs):
            if run in seen:
                continue
            seen.add(run)
            hours = run_hours(config, run, sizes[run[0]])
            out.count(hours)
            if hours is not None:
                by_model[run[1]] = by_model.get(run[1], 0.0) + hours[1]
        return out

    tuning = [r for ds in plan.datasets(config) for r in plan.tuning_grid_runs(config, ds)]
    lines = [
        line("Table 2 (models x datasets x seeds)", plan.table2_runs(config)),
        line("Table 2 reference rows (popularity, oracle)", [], note=f"{len(plan.bound_runs(config))} jobs, no training"),
        line("Table 3 (ablations)", plan.table3_runs(config)),
        line("Figure 3 (modality noise)", plan.noise_runs(config)),
        line("Figure 4 (interest centres k)", plan.centre_runs(config)),
        line("search grid (validation only)", tuning),
    ]
    lines += [_retrain_line(config, sizes), _pretrain_line(config, sizes, results)]
    priced = {m: train_ratio(m, reference(int(config.get("models", {}).get(m, {}).get("hidden_size", 64))))[1]
              for m in plan.models(config)}
    extra = []
    if "iisan" in plan.models(config):
        extra.append(f"iisan_cache: {len(plan.datasets(config))} job(s), the frozen encoders over every item "
                     "(not estimated)")
    return Budget(lines, sizes, by_model, priced, extra)


def _retrain_line(config: Mapping[str, Any], sizes: Mapping[str, Size | None]) -> Line:
    """The search's chosen point over the other seeds: known only after selection, so at most this."""
    model = plan.tuning_model(config)
    out = Line("search retrain (chosen point, other seeds)", note="at most; 0 if the default point wins")
    if model is None:
        return out
    others = [s for s in plan.seeds(config) if s != plan.tuning_seed(config)]
    for ds in plan.datasets(config):
        for seed in others:
            out.runs += 1
            out.count(run_hours(config, (ds, model, "default", seed), sizes[ds]))
    return out


def _pretrain_line(config: Mapping[str, Any], sizes: Mapping[str, Size | None], results: str | Path = ".") -> Line:
    """Cross-domain pre-training jobs (one per model and target), priced as epochs over the sources' targets."""
    out = Line("pre-training (MISSRec, UniSRec)")
    settings = pretraining_settings(config)
    for model in plan.models(config):
        for ds in plan.datasets(config):
            if not pretrains(config, model, ds):
                continue
            out.runs += 1
            sources = [sizes.get(s) or dataset_size(config, s, results) for s in pretraining_sources(config, ds)]
            if any(s is None for s in sources):
                out.count(None)
                continue
            params = dataset_model(config, ds, model)
            d, layers = int(params.get("hidden_size", 64)), int(params.get("layers", 2))
            seconds = sum(epoch_seconds(model, s, d, layers)[0] for s in sources) * int(settings["epochs"])
            out.count((seconds / 3600, seconds / 3600))  # a fixed number of epochs: at most = expected
    if not out.runs:
        out.note = "off: pretraining.models is empty"
    return out


def _h(hours: float) -> str:
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:,.1f}" if hours >= 1 else f"{hours:.2f}"


def format_budget(result: Budget, config_names: list[str], gpu_speedup: float | None = None) -> str:
    """The plan as a person reads it: sizes, one row per experiment, the cost model and its sources.

    ``gpu_speedup`` replaces the assumed CPU-thread -> GPU factor (:data:`GPU_SPEEDUP`), e.g. by one
    measured with ``benchmarks/gpu.py``.
    """
    speedup = float(gpu_speedup) if gpu_speedup else GPU_SPEEDUP
    assumption = (GPU_ASSUMPTION if not gpu_speedup else
                  f"GPU hours = CPU hours / {speedup:g} (given with --gpu-speedup)")
    out = [f"sgp4sr plan: {' + '.join(config_names)}", "", "datasets (users / items / training targets):"]
    for ds, size in result.sizes.items():
        if size is None:
            out.append(f"  {ds:<18} size unknown (no stats.json, no paper_stats): its runs are not priced")
        else:
            out.append(f"  {ds:<18} {size.users:>8,} / {size.items:>7,} / {size.targets:>9,}  ({size.source})")
    head = (f"{'experiment':<46} {'runs':>6} {'new':>6} {'CPU h max':>10} {'CPU h exp':>10} "
            f"{'GPU h max':>10} {'GPU h exp':>10}")
    out += ["", head, "-" * len(head)]
    for line in [*result.lines, result.total]:
        hours = (line.cpu_max_h, line.cpu_expected_h, line.cpu_max_h / speedup, line.cpu_expected_h / speedup)
        cells = f"{line.name:<46} {line.runs:>6} {line.new:>6} " + " ".join(
            f"{_h(h) if line.new else '-':>10}" for h in hours)
        notes = [line.note] if line.note else []
        if line.unsized:
            notes.append(f"{line.unsized} run(s) of unknown size not priced")
        if line.name == "total":
            out.append("-" * len(head))
        out.append(cells + (f"  ({'; '.join(notes)})" if notes else ""))
    if result.by_model:
        ranked = sorted(result.by_model.items(), key=lambda kv: -kv[1])
        out += ["", "expected GPU h by model (all experiments): "
                + ", ".join(f"{m} {_h(h / speedup)}" for m, h in ranked)]
    out += [f"  {job}" for job in result.extra_jobs]
    priced = {}
    for model, how in result.models_priced.items():
        priced.setdefault(how, []).append(model)
    out += ["", "cost model (sgp4sr.report.budget):",
            "  runs: sgp4sr.report.plan, each counted once where it first appears ('new'); "
            "variants priced as the default run",
            f"  max = training.epochs per run; exp = early stopping after {EXPECTED_EPOCHS} epochs (assumed, "
            "from the converged Baby runs)",
            "  epoch = training + one validation ranking, scaled by FLOPs "
            "(targets or users x d x (items + 12 x layers x d)) from:"]
    for m in MEASUREMENTS:
        out.append(f"    {m.name}: {m.dataset}, d = {m.hidden_size}, SASRec {m.train_s['sasrec']:g} s/epoch "
                   f"({m.machine});")
        out.append(f"      {m.source}")
    out.append("  model costs: " + "; ".join(f"{how}: {', '.join(ms)}" for how, ms in priced.items()))
    out.append("  every measurement is one-pass; a prefix-form run (train_form: prefix) costs its model's "
               "prefix/one-pass ratio of the same measurement (others: SASRec's): " + "; ".join(
                   f"{m.name} " + ", ".join(f"{k} {r:.2f}x" for k, r in m.prefix_ratio.items())
                   for m in MEASUREMENTS if m.prefix_ratio))
    out += [f"  {assumption}",
            f"  reference: the authors' code needs about {AUTHORS_GPU_EPOCH_S:g} s per training epoch on a GPU "
            "for a Baby-size split (issue 14)",
            "  CPU hours are one torch thread of the measured machine (Baby: idle; demo: beside 1-2 jobs)"]
    return "\n".join(out)
