"""SGP4SR's settings one at a time, as the paper's text and grids allow, selected on validation.

Every point is an ordinary run of the workflow (a variant, docs/architecture.md), so each is
its own cached Snakemake job with the config's seeds; nothing here trains by itself. Points:

* the released code's defaults (``default``);
* the paper's text where the code differs: Eq. 6's input LayerNorm (``input_ln~true``), Eq. 17's
  ``beta = 1``, both together, and Eq. 16's centre weight ``alpha`` halved and doubled;
* each key of the paper's grid (``experiments.tuning.grid``: lr, H, mu_o, mu_m, k) at the
  grid's smallest and largest value, the others at the dataset's defaults;
* the ablations w/o CIP and w/o CGC; SASRec and SASRecF as references, at their defaults and at
  every learning rate the sweep gives SGP4SR (so a better lr is not credited to SGP4SR alone).

Printed (Markdown): per point the validation metric that selects (mean over seeds), best epoch
and epochs run, test Recall@10 / NDCG@10, each score term alone (Recall@10), and Recall@10 by
the test target's training count (quartiles of users, ``tail_recall.py``); then the point chosen
on validation against the references (paired Wilcoxon over users of NDCG@10) and, for the
default and the chosen point, each score term's Recall@10 per quartile. Test numbers never
choose anything.

    python benchmarks/sgp4sr_study.py --workdir ../study --dataset demo --epochs 30 --run --cores 1

``--run`` asks Snakemake (in ``--workdir``, a working directory of its own so the study's
epoch budget does not replace the main results) for every point's runs first; without it the
table is printed from what is there.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sgp4sr import layout
from sgp4sr.config import deep_merge, validate_config
from sgp4sr.io import read_json
from sgp4sr.report.plan import canonical_variant
from sgp4sr.variants import format_variant

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tail_recall import recall_by_quartile, target_quartiles  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPER_TEXT = [("Eq. 6: input LayerNorm", {"input_ln": True}), ("Eq. 17: beta = 1", {"beta": 1.0}),
              ("Eq. 6 + Eq. 17", {"input_ln": True, "beta": 1.0}),
              ("Eq. 16: alpha = 0.5", {"alpha": 0.5}), ("Eq. 16: alpha = 2", {"alpha": 2.0})]
ABLATION_POINTS = [("w/o CIP", "wo_cip"), ("w/o CGC", "wo_cgc")]
REFERENCES = [("SASRec", "sasrec"), ("SASRecF", "sasrecf")]


def load_config(files: list[Path]) -> dict:
    """The configs merged as Snakemake merges ``--configfile`` files, validated."""
    config: dict = {}
    for path in files:
        config = deep_merge(config, yaml.safe_load(path.read_text()))
    validate_config(config)
    return config


def points(config: dict, dataset: str) -> list[tuple[str, str, str]]:
    """(group, label, variant) of every SGP4SR point, in table order; variants named as the workflow
    names them (``report.plan.canonical_variant``: a grid end equal to the dataset's default is ``default``)."""
    out = [("code", "released code's defaults", "default")]
    out += [("paper text", label, format_variant(**params)) for label, params in PAPER_TEXT]
    for key, values in config["experiments"]["tuning"]["grid"].items():
        for value in sorted({min(values), max(values)}):
            variant = canonical_variant(config, dataset, **{key: value})
            if variant != "default":
                out.append(("paper grid", f"{key} = {value:g}", variant))
    out += [("ablation", label, variant) for label, variant in ABLATION_POINTS]
    return out


def run_files(workdir: Path, dataset: str, model: str, variant: str, seeds: list[int]) -> list[Path]:
    return [workdir / layout.RUN_DIR.format(dataset=dataset, model=model, variant=variant, seed=s) / "metrics.json"
            for s in seeds]


def load_metrics(files: list[Path]) -> list[dict]:
    return [read_json(p) for p in files if p.exists()]


def row(label: str, runs: list[dict], rank_frames: list[pd.DataFrame], quartile: np.ndarray,
        terms: list[str], metric: str) -> dict:
    mean = lambda values: float(np.mean(values)) if values else np.nan  # noqa: E731
    rec = {"point": label, "seeds": len(runs), f"valid {metric}": mean([r["valid"][metric] for r in runs]),
           "best / run": f"{mean([r['best_epoch'] for r in runs]):.0f} / {mean([r['epochs_run'] for r in runs]):.0f}",
           "R@10": mean([r["test"]["recall@10"] for r in runs]), "N@10": mean([r["test"]["ndcg@10"] for r in runs])}
    for term in terms:
        values = [r["test_by_score_term"][term]["recall@10"] for r in runs if term in r.get("test_by_score_term", {})]
        rec[f"{term} alone"] = mean(values)
    by_quartile, _ = recall_by_quartile([f["test_rank"].to_numpy() for f in rank_frames], quartile)
    rec.update({f"Q{q + 1}": value for q, value in enumerate(by_quartile)})
    return rec


def term_quartiles(label: str, rank_frames: list[pd.DataFrame], quartile: np.ndarray) -> list[dict]:
    rows = []
    columns = ["test_rank"] + sorted(c for c in rank_frames[0].columns if c.startswith("test_rank_"))
    for column in columns:
        if not all(column in f for f in rank_frames):
            continue
        by_quartile, overall = recall_by_quartile([f[column].to_numpy() for f in rank_frames], quartile)
        term = "all" if column == "test_rank" else column.removeprefix("test_rank_") + " alone"
        rows.append({"point": label, "score": term, **{f"Q{q + 1}": v for q, v in enumerate(by_quartile)},
                     "all": overall})
    return rows


def markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4f")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, required=True, help="the study's own working directory")
    p.add_argument("--configfile", type=Path, nargs="+", default=[ROOT / "config" / "config.yaml"])
    p.add_argument("--dataset", default="demo")
    p.add_argument("--seeds", default="1")
    p.add_argument("--epochs", type=int, help="SGP4SR's epoch budget on this dataset (early stopping still applies)")
    p.add_argument("--run", action="store_true", help="run the missing points with Snakemake first")
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--skip", nargs="*", default=[], help="variants to leave out (e.g. k~100: the centre "
                                                          "attention's cost grows with k)")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    configfiles = [c.resolve() for c in args.configfile]
    if args.epochs:
        overlay = workdir / "study.yaml"
        overlay.write_text(yaml.safe_dump({"datasets": {args.dataset: {"model_training": {
            "sgp4sr": {"epochs": args.epochs}}}}}))
        configfiles.append(overlay)
    config = load_config(configfiles)
    ds = args.dataset
    sgp = [point for point in points(config, ds) if point[2] not in args.skip]
    targets = [f for _, _, v in sgp for f in run_files(workdir, ds, "sgp4sr", v, seeds)]
    refs = [(f"{name}" + ("" if v == "default" else f", {v.replace('~', ' = ')}"), model, v)
            for name, model in REFERENCES
            for v in ["default", *(v for _, _, v in sgp if v.startswith("lr~") and "+" not in v)]]
    targets += [f for _, m, v in refs for f in run_files(workdir, ds, m, v, seeds)]
    if args.run:
        cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", str(args.cores),
               "--configfile", *map(str, configfiles), "--", *(str(t.relative_to(workdir)) for t in targets)]
        print("#", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)

    quartile, qnames = target_quartiles(workdir, ds)
    metric = config["training"].get("valid_metric", "recall@5")
    modalities = list(config["datasets"][ds].get("modalities", {}))
    terms = ["id", *modalities]
    rows, frames = [], {}
    for group, label, model, variant in [*((g, lab, "sgp4sr", v) for g, lab, v in sgp),
                                         *(("reference", lab, m, v) for lab, m, v in refs)]:
        files = run_files(workdir, ds, model, variant, seeds)
        runs = load_metrics(files)
        if not runs:
            continue
        ranks = [pd.read_parquet(f.parent / "ranks.parquet") for f in files if f.exists()]
        frames[(model, variant)] = (label, ranks)
        rows.append({"group": group, "variant": variant if model == "sgp4sr" else f"{model}/{variant}",
                     **row(label, runs, ranks, quartile, terms if model == "sgp4sr" else [], metric)})
    table = pd.DataFrame(rows)
    print(f"## SGP4SR settings on {ds} (seeds {args.seeds}; Q1-Q4 = Recall@10 by the test target's training "
          f"count: {', '.join(qnames)})\n")
    print(markdown(table))
    ours = table[table.group != "reference"]
    if ours.empty:
        return
    chosen = ours.loc[ours[f"valid {metric}"].idxmax()]
    print(f"\nChosen on validation {metric}: {chosen['point']} ({chosen['variant']}), "
          f"test R@10 {chosen['R@10']:.4f}, N@10 {chosen['N@10']:.4f}.")
    from sgp4sr.report.significance import paired_wilcoxon, seed_averaged_user_metric

    def per_user(model: str, variant: str):
        return seed_averaged_user_metric([f.parent / "ranks.parquet" for f in run_files(workdir, ds, model, variant,
                                                                                        seeds)], "ndcg@10")
    for label, model, variant in refs:
        if (model, variant) in frames:
            test = paired_wilcoxon(per_user("sgp4sr", chosen["variant"]), per_user(model, variant))
            print(f"vs {label}: mean NDCG@10 {test['mean_a']:.4f} vs {test['mean_b']:.4f}, "
                  f"Wilcoxon p = {test['p_value']:.2g} ({test['n_nonzero']} of {test['n_users']} users differ)")
    detail = []
    for key in {("sgp4sr", "default"), ("sgp4sr", chosen["variant"])}:
        if key in frames:
            detail += term_quartiles(frames[key][0], frames[key][1], quartile)
    print("\nEach score term's Recall@10 by target quartile\n")
    print(markdown(pd.DataFrame(detail)))


if __name__ == "__main__":
    main()
