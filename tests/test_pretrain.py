"""Cross-domain pre-training: the checkpoint, its loss curve, fine-tuning from it, its errors, the config checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mm_fixtures import planted, write_benchmark_split
from sgp4sr.cli.main import main
from sgp4sr.config import ConfigError, pretraining_sources, pretrains, validate_config
from sgp4sr.data.load import load_split
from sgp4sr.engine.pretrain import PretrainSettings, Source, item_drop, join_sources, pretrain
from sgp4sr.engine.run import RunSpec, prepare

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "unisrec": {"hidden_size": 16, "layers": 1, "inner_size": 16, "dropout": 0.1, "attn_dropout": 0.1},
    "missrec": {"hidden_size": 16, "inner_size": 16, "heads": 2, "dropout": 0.1},
}
LOOP = {"epochs": 3, "batch_size": 64, "lr": 0.005}
TRAINING = {"epochs": 1, "batch_size": 64, "eval_batch_size": 128, "max_len": 8, "topk": [5, 10]}


def write_domain(root: Path, name: str, seed: int, widths: tuple[int, int] = (24, 16)) -> Source:
    """A planted split as a benchmark folder with image/text features in the split's item order."""
    data = planted(seed=seed, n_users=60, widths=widths)
    write_benchmark_split(data, root / name / "split")
    rows = np.array([int(t) if t else 0 for t in load_split(root / name / "split").item_tokens])
    (root / name / "features").mkdir()
    for modality, matrix in data.ctx.features.items():
        np.save(root / name / "features" / f"{modality}.npy", matrix[rows])
    return Source(name, root / name / "split", root / name / "features")


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> dict[str, Source]:
    root = tmp_path_factory.mktemp("domains")
    return {"a": write_domain(root, "a", 1), "b": write_domain(root, "b", 2), "target": write_domain(root, "target", 3),
            "narrow": write_domain(root, "narrow", 4, widths=(24, 12))}


@pytest.fixture(scope="module")
def pretrained(domains, tmp_path_factory) -> dict[str, Path]:
    """Each model pre-trained on sources a and b through the CLI, as the rule runs it."""
    root = tmp_path_factory.mktemp("pretrained")
    out = {}
    for model, params in MODELS.items():
        sources = [arg for s in (domains["a"], domains["b"])
                   for arg in ("--source", s.name, str(s.data), str(s.features))]
        run = json.dumps({"model": params, "pretraining": LOOP, "max_len": 8, "modalities": ["image", "text"]})
        assert main(["train", "pretrain", "--model", model, *sources, "--params", run, "--seed", "5",
                     "--out", str(root / model)]) == 0
        out[model] = root / model
    return out


def target_spec(domains, model: str, source: str = "target", **kw) -> RunSpec:
    return RunSpec(data=domains[source].data, out=Path("unused"), model=model, seed=3, training=TRAINING,
                   model_params=MODELS[model], features=domains[source].features, modalities=["image", "text"], **kw)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_checkpoint_holds_no_item_sized_tensor(pretrained, model):
    folder = pretrained[model]
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "model.pt"]  # checkpoint.pt removed
    ckpt = torch.load(folder / "model.pt", weights_only=True)
    metrics = json.loads((folder / "metrics.json").read_text())
    n_items = metrics["n_items"] + 1  # the joint item table, with padding
    assert n_items == 81 and [s["name"] for s in metrics["sources"]] == ["a", "b"]
    assert ckpt["model"] == model and ckpt["sources"] == ["a", "b"]
    for name, tensor in ckpt["state_dict"].items():
        assert not name.startswith(("item_embedding", "interest_")), name
        assert n_items not in tensor.shape and n_items - 1 not in tensor.shape, (name, tensor.shape)
    assert any(name.startswith("position_embedding") for name in ckpt["state_dict"])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_pretraining_loss_decreases(pretrained, model):
    curve = json.loads((pretrained[model] / "metrics.json").read_text())["curve"]
    assert [c["epoch"] for c in curve] == [1, 2, 3]
    assert curve[-1]["loss"] < curve[0]["loss"] < curve[0]["first_batch_loss"], curve


@pytest.mark.parametrize("model", sorted(MODELS))
def test_finetuning_loads_transferred_weights_and_fresh_id_tables(domains, pretrained, model):
    given = torch.load(pretrained[model] / "model.pt", weights_only=True)["state_dict"]
    tuned = prepare(target_spec(domains, model, init=pretrained[model] / "model.pt")).model
    scratch = prepare(target_spec(domains, model)).model
    state, fresh = tuned.state_dict(), scratch.state_dict()
    for name, tensor in given.items():
        assert torch.equal(state[name], tensor), name
    assert "item_embedding.weight" not in given
    assert torch.equal(state["item_embedding.weight"], fresh["item_embedding.weight"])  # same seed, fresh init
    frozen = {n for n, p in tuned.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(type(tuned).finetune_frozen) for n in frozen)
    assert tuned.item_embedding.weight.requires_grad
    unfrozen = prepare(target_spec(domains, model, init=pretrained[model] / "model.pt", freeze_encoder=False)).model
    assert all(p.requires_grad for p in unfrozen.parameters())


def test_finetuning_run_records_the_checkpoint(domains, pretrained, tmp_path):
    init = pretrained["missrec"] / "model.pt"
    run = json.dumps({"training": TRAINING, "model": MODELS["missrec"], "modalities": ["image", "text"],
                      "finetune": {"freeze_encoder": True}})
    assert main(["train", "run", "--data", str(domains["target"].data), "--features", str(domains["target"].features),
                 "--model", "missrec", "--params", run, "--init", str(init), "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["pretrained"]["sources"] == ["a", "b"]
    assert metrics["config"]["inputs"]["init"] == str(init)
    assert metrics["n_parameters"] < sum(t.numel() for t in torch.load(tmp_path / "model.pt")["state_dict"].values())


def test_shape_mismatch_names_the_parameter(domains, pretrained):
    spec = target_spec(domains, "missrec", source="narrow", init=pretrained["missrec"] / "model.pt")
    with pytest.raises(ValueError, match=r"parameter 'adaptors\.text\.weight' has shape \(16, 16\) in the "
                                         r"checkpoint but \(16, 12\) here"):
        prepare(spec)


def test_checkpoint_of_another_model_is_refused(domains, pretrained):
    with pytest.raises(ValueError, match="holds pre-trained 'unisrec' weights, not 'missrec'"):
        prepare(target_spec(domains, "missrec", init=pretrained["unisrec"] / "model.pt"))


def test_sources_must_share_feature_widths(domains):
    with pytest.raises(ValueError, match="modality 'text' is 16-d in a but 12-d in narrow"):
        join_sources([domains["a"], domains["narrow"]], ["image", "text"])


def test_joint_item_table_offsets_each_source(domains):
    joint = join_sources([domains["a"], domains["b"]], ["text"])
    assert joint.offsets == {"a": 0, "b": 40} and joint.n_items == 81 and list(joint.features) == ["text"]
    text_b = np.load(domains["b"].features / "text.npy")
    np.testing.assert_array_equal(joint.features["text"][41:], text_b[1:])
    first_b = load_split(domains["b"].data).train_seqs[0]
    np.testing.assert_array_equal(joint.train_seqs[60], first_b + 40)


def test_interrupted_pretraining_resumes_to_the_same_weights(domains, tmp_path):
    sources = [domains["a"], domains["b"]]
    settings = PretrainSettings(epochs=2, batch_size=64, lr=0.005, max_len=8)
    pretrain("unisrec", sources, tmp_path / "whole", MODELS["unisrec"], settings, seed=2)

    def crash(epoch: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain("unisrec", sources, tmp_path / "cut", MODELS["unisrec"], settings, seed=2, on_epoch_end=crash)
    assert (tmp_path / "cut" / "checkpoint.pt").exists() and not (tmp_path / "cut" / "model.pt").exists()
    pretrain("unisrec", sources, tmp_path / "cut", MODELS["unisrec"], settings, seed=2)
    whole = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)["state_dict"]
    cut = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["state_dict"]
    for name in whole:
        torch.testing.assert_close(cut[name], whole[name])


def test_item_drop_keeps_the_oldest_item_and_the_order():
    gen = torch.Generator().manual_seed(0)
    seq = torch.tensor([[0, 0, 3, 4, 5, 6], [0, 0, 0, 0, 0, 7], [1, 2, 3, 4, 5, 6]])
    assert torch.equal(item_drop(seq, 0.0, gen), seq)
    for _ in range(20):
        out = item_drop(seq, 0.6, gen)
        for row, aug in zip(seq, out):
            kept = aug[aug != 0].tolist()
            items = row[row != 0].tolist()
            assert kept and kept[0] == items[0] and (aug != 0).sum() == len(kept)
            assert aug[-len(kept):].tolist() == kept  # right-aligned, no gaps
            it = iter(items)
            assert all(k in it for k in kept)  # a subsequence, order kept
    dropped = item_drop(seq, 0.99, gen)
    assert ((dropped != 0).sum(1) == 1).all()


def test_unknown_pretraining_setting_is_named():
    with pytest.raises(ValueError, match="'epocs'.*known keys: epochs"):
        PretrainSettings.from_dict({"epocs": 3})


def test_models_without_a_pretraining_stage_are_refused(domains, tmp_path):
    with pytest.raises(ValueError, match="sasrec' has no cross-domain pre-training stage"):
        pretrain("sasrec", [domains["a"]], tmp_path)


# ---- configuration ----


@pytest.fixture
def config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def with_second_dataset(config: dict) -> dict:
    config = copy.deepcopy(config)
    config["datasets"]["demo2"] = copy.deepcopy(config["datasets"]["demo"])
    config["run"]["datasets"] = ["demo", "demo2"]
    return config


def test_pretraining_with_one_dataset_fails_validation(config):
    config["pretraining"] = {"models": ["missrec"]}
    with pytest.raises(ConfigError, match=r"pretraining.models is \['missrec'\] but only one dataset is configured"):
        validate_config(config)
    config["pretraining"] = {"models": []}
    validate_config(config)  # off: one dataset is fine


def test_pretraining_sources_leave_the_target_out(config):
    config = with_second_dataset(config)
    config["pretraining"] = {"models": ["unisrec"]}
    validate_config(config)
    assert pretraining_sources(config, "demo") == ["demo2"] and pretraining_sources(config, "demo2") == ["demo"]
    assert pretrains(config, "unisrec", "demo") and not pretrains(config, "missrec", "demo")
    config["pretraining"]["sources"] = ["demo2"]
    with pytest.raises(ConfigError, match="no source dataset left for target 'demo2'"):
        validate_config(config)
    config["pretraining"]["sources"] = ["demo3"]
    with pytest.raises(ConfigError, match="pretraining.sources: dataset 'demo3' is not defined"):
        validate_config(config)
