"""config/paper.yaml is the paper (issue 14): Table 2's columns, the releases' own file names, the authors'
splits by URL, a dry run of everything, and the plan of what it costs. No network, no ../shared."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sgp4sr.cli.main import main as sgp4sr_main
from sgp4sr.config import ConfigError, deep_merge, pretraining_settings, pretraining_sources, validate_config
from sgp4sr.data.download import DownloadError, download_file
from sgp4sr.data.rules import DataRules, url_basename
from sgp4sr.models.registry import available_models
from sgp4sr.report import budget, plan
from workflow_fixtures import copy_workflow, run_snakemake

ROOT = Path(__file__).resolve().parents[1]

#: the paper's Table 2 columns, in the paper's order (issue 14); the proposed model is drawn last
PAPER_TABLE2 = ["sasrec", "bert4rec", "fdsa", "sasrecf", "unisrec", "mmmlp", "missrec", "iisan", "hm4sr", "sgp4sr"]
NOT_IN_PAPER = {"gru4rec"}  # an extra column, marked so in paper.yaml
FIGURE3_BASELINES = ["sasrecf", "missrec", "hm4sr"]
ABLATIONS = ["wo_coo", "wo_cgc", "wo_cip", "wo_mul", "wo_c2c"]
PAPER_DATASETS = {"pantry": ("amazon2018", "Prime_Pantry"), "baby": ("amazon2014", "Baby"),
                  "clothing": ("amazon2014", "Clothing_Shoes_and_Jewelry"), "office": ("amazon2018", "Office_Products")}

#: each release's own file list: its categories, the file name of each role and the folders they sit in
#: (2014: jmcauley.ucsd.edu/data/amazon/index_2014.html on snap.stanford.edu; 2018: nijianmo.github.io/amazon,
#: the same tree on three hosts)
RELEASES = {
    "amazon2014": {
        "categories": {"Books", "Electronics", "Movies_and_TV", "CDs_and_Vinyl", "Clothing_Shoes_and_Jewelry",
                       "Home_and_Kitchen", "Kindle_Store", "Sports_and_Outdoors", "Cell_Phones_and_Accessories",
                       "Health_and_Personal_Care", "Toys_and_Games", "Video_Games", "Tools_and_Home_Improvement",
                       "Beauty", "Apps_for_Android", "Office_Products", "Pet_Supplies", "Automotive",
                       "Grocery_and_Gourmet_Food", "Patio_Lawn_and_Garden", "Baby", "Digital_Music",
                       "Musical_Instruments", "Amazon_Instant_Video"},
        "files": {"reviews": "reviews_{c}_5.json.gz", "meta": "meta_{c}.json.gz", "image_features": "image_features_{c}.b"},
        "folders": {"reviews": ["http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"],
                    "meta": ["http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"],
                    "image_features": ["http://snap.stanford.edu/data/amazon/productGraph/image_features/categoryFiles/"]},
    },
    "amazon2018": {
        "categories": {"AMAZON_FASHION", "All_Beauty", "Appliances", "Arts_Crafts_and_Sewing", "Automotive", "Books",
                       "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Digital_Music",
                       "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food", "Home_and_Kitchen",
                       "Industrial_and_Scientific", "Kindle_Store", "Luxury_Beauty", "Magazine_Subscriptions",
                       "Movies_and_TV", "Musical_Instruments", "Office_Products", "Patio_Lawn_and_Garden",
                       "Pet_Supplies", "Prime_Pantry", "Software", "Sports_and_Outdoors", "Tools_and_Home_Improvement",
                       "Toys_and_Games", "Video_Games"},
        "files": {"reviews": "{c}_5.json.gz", "ratings": "{c}.csv", "meta": "meta_{c}.json.gz"},
        "folders": {role: [f"{host}{sub}" for host in ("https://jmcauley.ucsd.edu/data/amazon_v2/",
                                                       "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/",
                                                       "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/")]
                    for role, sub in (("reviews", "categoryFilesSmall/"), ("ratings", "categoryFilesSmall/"),
                                      ("meta", "metaFiles2/"))},
    },
}
AUTHORS_REPO = re.compile(r"^https://raw\.githubusercontent\.com/changhongli1/SGP4SR/[0-9a-f]{40}/dataset/"
                          r"(?P<name>\w+)/(?P=name)\.(?P<part>train|valid|test)\.inter$")
#: the authors' splits, counted from their files: users, real items, every event
AUTHORS_COUNTS = {"baby": (19445, 7050, 160792), "clothing": (39387, 23033, 278677)}


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.fixture(scope="module")
def paper() -> dict:
    config = deep_merge(load("config.yaml"), load("paper.yaml"))  # as Snakemake merges --configfile
    validate_config(config)
    return config


def test_planned_models_are_table2_columns(paper):
    planned = [m for m in dict.fromkeys(run[1] for run in plan.table2_runs(paper))]
    assert [m for m in planned if m not in NOT_IN_PAPER] == PAPER_TABLE2
    assert set(planned) == set(available_models())  # every model the project implements
    for ds in PAPER_DATASETS:
        assert {m for d, m, v, s in plan.table2_runs(paper) if d == ds} == set(planned)
    assert plan.noise_models(paper) == ["sgp4sr", *FIGURE3_BASELINES]
    assert paper["run"]["ablations"] == ABLATIONS and plan.datasets(paper) == list(PAPER_DATASETS)


def test_paper_scale_hyper_parameters(paper):
    for model in plan.models(paper):
        assert paper["models"][model]["hidden_size"] == 300, model
    assert paper["training"]["epochs"] == 300 and paper["training"]["batch_size"] == 256
    assert [paper["datasets"][ds]["graphs"]["centres"] for ds in PAPER_DATASETS] == [50, 50, 60, 60]  # spec §4
    assert paper["models"]["iisan"]["image_pretrained"] == "openai"  # not random CLIP weights in its cache


def test_pretraining_sources_share_the_targets_feature_widths(paper):
    """A pre-trained checkpoint carries the adaptors: every source needs the target's encoders."""
    if not pretraining_settings(paper)["models"]:
        return
    for target in plan.datasets(paper):
        for source in pretraining_sources(paper, target):
            assert paper["datasets"][source]["modalities"] == paper["datasets"][target]["modalities"], (source, target)


@pytest.mark.parametrize("dataset", list(PAPER_DATASETS))
def test_dataset_matches_its_release(paper, dataset):
    cfg = paper["datasets"][dataset]
    source, category = PAPER_DATASETS[dataset]
    assert (cfg["source"], cfg["category"]) == (source, category)
    release = RELEASES[source]
    assert category in release["categories"]
    published = any(m["encoder"] == "published" for m in cfg["modalities"].values())  # the 2014 .b features
    rules = DataRules(paper)
    interactions = rules.interactions_role(dataset)  # UniSRec's Pantry/Office: the 2018 ratings CSV
    assert interactions == ("ratings" if dataset in ("pantry", "office") else "reviews")
    assert set(cfg["files"]) == {interactions, "meta", *(["image_features"] if published else [])}
    for role, entry in cfg["files"].items():
        name = release["files"][role].format(c=category)
        assert url_basename(entry["url"]) == name
        assert any(entry["url"] == folder + name for folder in release["folders"][role]), entry["url"]
        if role in (interactions, "meta"):  # the path the parse rule reads is the downloaded file
            assert rules.raw_file(dataset, role) == f"resources/downloads/{dataset}/{name}"


def test_paper_stats_of_every_dataset(paper):
    for ds in PAPER_DATASETS:
        stats = paper["datasets"][ds]["paper_stats"]
        assert {"users", "items", "interactions"} <= set(stats)
        size = budget.dataset_size(paper, ds, results=Path("/nonexistent"))
        assert size.targets > 0 and size.source == "paper_stats"
    for ds, counts in AUTHORS_COUNTS.items():
        for name in (ds, f"{ds}_authors"):
            stats = paper["datasets"][name]["paper_stats"]
            assert (stats["users"], stats["items"], stats["interactions"]) == counts
    office = paper["datasets"]["office"]["paper_stats"]
    assert (office["users"], office["items"], office["interactions"]) == (87436, 25986, 684837)  # not 2014's scale


def test_authors_splits_download_from_their_repository(paper):
    rules = DataRules(paper)
    for name, parts in (("baby", {"train", "valid", "test"}), ("clothing", {"valid", "test"})):
        ds = f"{name}_authors"
        cfg = paper["datasets"][ds]
        assert cfg["source"] == "benchmark" and cfg["name"] == name and "path" not in cfg
        assert set(cfg["files"]) == parts
        for part, entry in cfg["files"].items():
            match = AUTHORS_REPO.match(entry["url"])
            assert match and (match["name"], match["part"]) == (name, part), entry["url"]
            assert len(entry["sha256"]) == 64 and entry["size"] > 0
        inputs = rules.benchmark_inputs(SimpleNamespace(dataset=ds))
        assert inputs == {p: f"resources/downloads/{ds}/{name}.{p}.inter" for p in sorted(parts)}
    assert "../shared" not in (ROOT / "config" / "paper.yaml").read_text()


def test_offline_download_names_where_to_put_the_file(tmp_path):
    dest = tmp_path / "downloads" / "clothing_authors" / "clothing.valid.inter"
    with pytest.raises(DownloadError) as err:  # a closed local port: no network is touched
        download_file("http://127.0.0.1:9/clothing.valid.inter", dest, retries=0, progress=False)
    assert f"place it at {dest.resolve()}" in str(err.value) and not dest.exists()


def test_benchmark_import_without_train_file(tmp_path):
    from sgp4sr.data.benchmark import import_benchmark

    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    (tmp_path / "c.valid.inter").write_text(header + "0\t1 2 3\t4\n1\t2 5\t1\n")
    (tmp_path / "c.test.inter").write_text(header + "0\t1 2 3 4\t5\n1\t2 5 1\t3\n")
    import_benchmark(None, tmp_path / "c.valid.inter", tmp_path / "c.test.inter", tmp_path / "out")
    rows = (tmp_path / "out" / "train.inter").read_text().splitlines()[1:]
    assert sorted(rows) == sorted(["0\t1\t2", "0\t1 2\t3", "1\t2\t5"])


def test_budget_reproduces_its_reference():
    ref = budget.reference(300)
    size = budget.Size(ref.users, ref.items, ref.targets, "ref")
    train, evaluation = budget.epoch_seconds("sasrec", size, 300)
    assert train == pytest.approx(ref.train_s["sasrec"]) and evaluation == pytest.approx(ref.eval_s["sasrec"])
    bigger = budget.Size(ref.users, 2 * ref.items, 2 * ref.targets, "x")
    assert budget.epoch_seconds("sasrec", bigger, 300)[0] > 2 * train
    assert budget.epoch_seconds("sgp4sr", size, 300)[0] == pytest.approx(ref.ratio["sgp4sr"] * train)
    assert budget.epoch_seconds("gru4rec", size, 300)[0] == pytest.approx(ref.train_s["gru4rec"])
    prefix = budget.epoch_seconds("sasrec", size, 300, train_form="prefix")
    assert prefix[0] == pytest.approx(ref.prefix_ratio["sasrec"] * train) and prefix[1] == evaluation


def test_plan_prices_a_models_training_form():
    """A model trained in the prefix form (model_training.<m>.train_form) is priced at its measured ratio."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    size = budget.Size(1000, 700, 12000, "test")
    run = ("demo", "sasrec", "default", 1)
    config["model_training"] = {"sasrec": {"train_form": "onepass"}}
    onepass = budget.run_hours(config, run, size)
    config["model_training"] = {"sasrec": {"train_form": "prefix"}}
    prefix = budget.run_hours(config, run, size)
    train, evaluation = budget.epoch_seconds("sasrec", size, 64)
    epochs = min(config["training"]["epochs"], budget.EXPECTED_EPOCHS)
    ratio = budget.reference(64).prefix_ratio["sasrec"]  # measured at d = 64; validation is not scaled
    assert ratio > 1.5
    assert onepass[1] == pytest.approx((epochs * (train + evaluation) + evaluation) / 3600)
    assert prefix[1] == pytest.approx((epochs * (train * ratio + evaluation) + evaluation) / 3600)


@pytest.mark.parametrize("files", [[], ["config/paper.yaml"]])
def test_plan_command_counts_the_runs(files, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert sgp4sr_main(["plan", "--configfile", *files, "--results", "/nonexistent"]) == 0
    out = capsys.readouterr().out
    config = deep_merge(load("config.yaml"), load(Path(files[0]).name)) if files else load("config.yaml")
    counts = {"Table 2 (models x datasets x seeds)": len(plan.table2_runs(config)),
              "Table 3 (ablations)": len(plan.table3_runs(config)),
              "Figure 3 (modality noise)": len(plan.noise_runs(config)),
              "Figure 4 (interest centres k)": len(plan.centre_runs(config))}
    for name, runs in counts.items():
        assert re.search(rf"^{re.escape(name)}\s+{runs}\s+\d+\s", out, re.M), (name, out)
    assert "GPU h" in out and "assumed" in out and "total" in out


@pytest.mark.workflow
def test_dry_run_plans_every_paper_run_offline(tmp_path):
    work = copy_workflow(tmp_path)
    result = run_snakemake(work, "-n", "--cores", "1", "all", "--configfile", "config/paper.yaml", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = set(re.findall(r"results/(\w+)/runs/(\w+)/([^/\s,]+)/seed(\d+)/metrics\.json", result.stdout))
    seeds = {"1", "2", "3"}
    for ds in PAPER_DATASETS:
        for model in [*PAPER_TABLE2, *NOT_IN_PAPER]:
            assert {s for d, m, v, s in runs if (d, m, v) == (ds, model, "default")} == seeds, (ds, model)
        for ablation in ABLATIONS:
            assert {s for d, m, v, s in runs if (d, m, v) == (ds, "sgp4sr", ablation)} == seeds, (ds, ablation)
        for model in ["sgp4sr", *FIGURE3_BASELINES]:
            noisy = {v for d, m, v, s in runs if (d, m) == (ds, model) and v.startswith("fset~image@noise")}
            assert noisy == {f"fset~image@noise{r}" for r in ("0.1", "0.2", "0.3", "0.4", "0.5")}, (ds, model)
        default_k = {"pantry": 50, "baby": 50, "clothing": 60, "office": 60}[ds]
        ks = {int(v[2:]) for d, m, v, s in runs if (d, m) == (ds, "sgp4sr") and re.fullmatch(r"k~\d+", v)}
        assert ks == {10, 20, 30, 40, 50, 60, 80, 100} - {default_k}, ds
    for name in ("Office_Products.csv", "meta_Office_Products.json.gz", "Prime_Pantry.csv",
                 "reviews_Baby_5.json.gz", "image_features_Clothing_Shoes_and_Jewelry.b"):
        assert f"filename={name}" in result.stdout, name
    assert "reviews_Office_Products_5.json.gz" not in result.stdout  # not the 2014 file
    assert "rule iisan_cache" in result.stdout


@pytest.mark.slow
def test_gpu_benchmark_smoke():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke"], capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "s/valid rank" in result.stdout and "# split: random" in result.stdout
    for model in ("sasrec", "sgp4sr"):
        for precision in ("fp32", "bf16"):
            assert re.search(rf"^{model}\s+{precision}\s", result.stdout, re.M), (model, precision)


def test_pretraining_is_on_with_sources_of_the_targets_widths(paper):
    """The paper's MISSRec/UniSRec are pre-trained; each target's sources share its encoders."""
    assert set(pretraining_settings(paper)["models"]) == {"missrec", "unisrec"}
    for target in plan.datasets(paper):
        assert pretraining_sources(paper, target), target


def test_per_target_pretraining_sources_are_validated(paper):
    bad = deep_merge(paper, {"datasets": {"baby": {"pretraining_sources": ["babyy"]}}})
    with pytest.raises(ConfigError, match=r"datasets\.baby\.pretraining_sources: dataset 'babyy' is not defined"):
        validate_config(bad)
    alone = deep_merge(paper, {"datasets": {"baby": {"pretraining_sources": ["baby"]}}})
    with pytest.raises(ConfigError, match=r"datasets\.baby\.pretraining_sources: no source dataset left"):
        validate_config(alone)
