"""Input/params helpers of the data stage's Snakemake rules (workflow/rules/data.smk).

They live here rather than in the rule file so the rule file holds rules
only (``snakemake --lint``) and so the source -> files logic is unit-tested.
:class:`DataRules` keeps the validated config; its bound methods take
Snakemake's ``wildcards`` and are passed to ``input:``/``params:`` directly.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any, Iterable, Mapping
from urllib.parse import urlparse

from sgp4sr import layout
from sgp4sr.config import schema_defaults

DEMO_CATEGORY = "Demo"  # a demo dataset's raw files are named like a 2014 download of category "Demo"
RAW_SOURCES = ("amazon2014", "amazon2018", "demo")  # rule parse: reviews (or 2018 ratings) + metadata files
PARSED_SOURCES = (*RAW_SOURCES, "recbole")  # parsed by parse / parse_recbole, then filter -> split


class DataRuleError(ValueError):
    """The config does not say where a dataset's files are."""


def url_basename(url: str) -> str:
    return os.path.basename(urlparse(url).path)


def names_regex(names: Iterable[str]) -> str:
    """Alternation of dataset names for ``wildcard_constraints``; never matches when empty."""
    names = list(names)
    return "(?:" + "|".join(re.escape(n) for n in names) + ")" if names else "(?!)"


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


class DataRules:
    def __init__(self, config: Mapping[str, Any], resources_dir: str = "resources") -> None:
        self.config = config
        self.resources = resources_dir

    # -- which rule serves which dataset -------------------------------------------------
    def _where(self, *sources: str) -> list[str]:
        return [ds for ds, cfg in self.config["datasets"].items() if cfg["source"] in sources]

    @property
    def raw_datasets(self) -> str:
        return names_regex(self._where(*RAW_SOURCES))

    @property
    def parsed_datasets(self) -> str:
        return names_regex(self._where(*PARSED_SOURCES))

    @property
    def recbole_datasets(self) -> str:
        return names_regex(self._where("recbole"))

    @property
    def demo_datasets(self) -> str:
        return names_regex(self._where("demo"))

    @property
    def benchmark_datasets(self) -> str:
        return names_regex(self._where("benchmark"))

    @property
    def download_datasets(self) -> str:
        return names_regex(ds for ds, cfg in self.config["datasets"].items() if cfg.get("files"))

    # -- paths -------------------------------------------------------------------------
    def cfg(self, dataset: str) -> Mapping[str, Any]:
        return self.config["datasets"][dataset]

    def setting(self, dataset: str, key: str) -> Any:
        """``datasets.<dataset>.<key>``, or the schema's default for it."""
        cfg = self.cfg(dataset)
        return cfg[key] if key in cfg else schema_defaults("dataset")[key]

    def interactions_role(self, dataset: str) -> str:
        """``reviews`` (the 5-core review file) or ``ratings`` (the 2018 ratings-only CSV)."""
        return str(self.setting(dataset, "interactions"))

    def download_dir(self, dataset: str) -> str:
        return layout.download_dir(self.resources, dataset)

    def local_or_download(self, dataset: str, role: str, filename: str) -> str | None:
        """The downloaded ``files.<role>`` if configured, else ``<path>/<filename>``, else None."""
        cfg = self.cfg(dataset)
        entry = cfg.get("files", {}).get(role)
        if entry:
            return f"{self.download_dir(dataset)}/{url_basename(entry['url'])}"
        return f"{cfg['path']}/{filename}" if cfg.get("path") else None

    def optional_file(self, dataset: str, role: str, filename: str) -> str | None:
        """:meth:`local_or_download` of an optional file: a download always, a local file if it exists."""
        path = self.local_or_download(dataset, role, filename)
        if path is not None and (role in self.cfg(dataset).get("files", {}) or os.path.exists(path)):
            return path
        return None

    def raw_file(self, dataset: str, role: str) -> str:
        """The reviews/ratings/meta file of an Amazon or demo dataset in its download folder."""
        cfg = self.cfg(dataset)
        entry = cfg.get("files", {}).get(role)
        if entry:
            return f"{self.download_dir(dataset)}/{url_basename(entry['url'])}"
        source = cfg["source"]
        category = DEMO_CATEGORY if source == "demo" else cfg["category"]
        if role == "ratings" and source != "amazon2018":
            raise DataRuleError(f"dataset {dataset!r}: `interactions: ratings` reads the Amazon 2018 ratings-only "
                                f"CSV (<Category>.csv); source {source!r} has none")
        if role == "meta":
            name = f"meta_{category}.json.gz"
        elif role == "ratings":
            name = f"{category}.csv"
        elif source == "amazon2018":
            name = f"{category}_5.json.gz"
        else:
            name = f"reviews_{category}_5.json.gz"
        return f"{self.download_dir(dataset)}/{name}"

    # -- rule inputs and params (each takes Snakemake's wildcards) ----------------------
    def download_entry(self, wildcards) -> Mapping[str, Any]:
        files = self.cfg(wildcards.dataset).get("files", {})
        for entry in files.values():
            if url_basename(entry["url"]) == wildcards.filename:
                return entry
        known = ", ".join(url_basename(e["url"]) for e in files.values()) or "none"
        raise DataRuleError(
            f"dataset {wildcards.dataset!r} has no files entry for {wildcards.filename!r}; known: {known}"
        )

    def download_url(self, wildcards) -> str:
        return self.download_entry(wildcards)["url"]

    def download_checks(self, wildcards) -> str:
        entry = self.download_entry(wildcards)
        args = []
        if entry.get("sha256"):
            args += ["--sha256", entry["sha256"]]
        if entry.get("size") is not None:
            args += ["--size", str(int(entry["size"]))]
        return " ".join(args)

    def raw_inputs(self, wildcards) -> dict[str, str]:
        """``reviews`` or ``ratings`` (:meth:`interactions_role`) and ``meta``."""
        role = self.interactions_role(wildcards.dataset)
        return {role: self.raw_file(wildcards.dataset, role), "meta": self.raw_file(wildcards.dataset, "meta")}

    def interactions_arg(self, wildcards, input) -> str:  # noqa: A002 - Snakemake passes `input` by name
        """``--reviews <file>`` or ``--ratings <file>`` of ``prepare parse``, shell-quoted."""
        role = self.interactions_role(wildcards.dataset)
        return f"--{role} {shlex.quote(str(getattr(input, role)))}"

    def demo_out_dir(self, wildcards) -> str:
        return self.download_dir(wildcards.dataset)

    def demo_config_json(self, wildcards) -> str:
        return _json(self.cfg(wildcards.dataset).get("demo", {}))

    def skip_malformed_flag(self, wildcards) -> str:
        return "--skip-malformed" if self.cfg(wildcards.dataset).get("skip_malformed") else ""

    def kcore(self, wildcards) -> int:
        return int(self.cfg(wildcards.dataset).get("kcore", 5))

    def filter_inputs(self, wildcards) -> dict[str, str]:
        """The parsed interactions and, with ``require_meta``, the parsed metadata (which items have a record)."""
        parsed = f"results/{wildcards.dataset}/parsed"
        inputs = {"interactions": f"{parsed}/interactions.parquet"}
        if self.setting(wildcards.dataset, "require_meta"):
            inputs["item_meta"] = f"{parsed}/items.parquet"
        return inputs

    def filter_args(self, wildcards, input) -> str:  # noqa: A002 - Snakemake passes `input` by name
        """``--dedup`` and, with ``require_meta``, ``--require-meta --items`` of ``prepare filter``, shell-quoted."""
        args = ["--dedup", self.setting(wildcards.dataset, "dedup")]
        if self.setting(wildcards.dataset, "require_meta"):
            args += ["--require-meta", "--items", input.item_meta]
        return " ".join(shlex.quote(str(a)) for a in args)

    def unseen_targets(self, wildcards) -> str:
        """``keep`` (default, the paper's protocol) or ``drop`` users whose valid/test item is unseen in training."""
        return str(self.setting(wildcards.dataset, "unseen_targets"))

    def benchmark_inputs(self, wildcards) -> dict[str, str]:
        """train/valid/test: downloaded ``files`` roles, else ``<path>/<name>.<part>.inter``.

        The train file is optional (the published Clothing split has none):
        without it the valid rows give the training sequences.
        """
        ds = wildcards.dataset
        inputs = {}
        for part in ("train", "valid", "test"):
            find = self.optional_file if part == "train" else self.local_or_download
            path = find(ds, part, f"{self.cfg(ds)['name']}.{part}.inter")
            if path is not None:
                inputs[part] = path
            elif part != "train":
                raise DataRuleError(f"benchmark dataset {ds!r} needs `path` or files.{part}")
        return inputs

    @staticmethod
    def benchmark_train_arg(wildcards, input) -> str:  # noqa: A002 - Snakemake passes `input` by name
        return f"--train {input.train}" if "train" in input.keys() else ""

    def recbole_inputs(self, wildcards) -> dict[str, str]:
        """inter (required) and item: downloaded ``files`` roles, else ``<path>/<name>.{inter,item}``.

        The item file is optional unless ``text_fields`` asks for it (then a
        missing one is a missing input, named by Snakemake).
        """
        ds, cfg = wildcards.dataset, self.cfg(wildcards.dataset)
        inter = self.local_or_download(ds, "inter", f"{cfg['name']}.inter")
        if inter is None:
            raise DataRuleError(f"recbole dataset {ds!r} needs `path` or files.inter")
        find = self.local_or_download if cfg.get("text_fields") else self.optional_file
        item = find(ds, "item", f"{cfg['name']}.item")
        return {"inter": inter, **({"item": item} if item else {})}

    def recbole_args(self, wildcards, input) -> str:  # noqa: A002 - Snakemake passes `input` by name
        """``--item``, ``--text-fields`` and ``--rating-threshold`` of ``prepare parse-recbole``, shell-quoted."""
        cfg = self.cfg(wildcards.dataset)
        item = getattr(input, "item", None)
        args = ["--item", item] if item else []
        if cfg.get("text_fields"):
            args += ["--text-fields", *cfg["text_fields"]]
        if cfg.get("rating_threshold") is not None:
            args += ["--rating-threshold", str(cfg["rating_threshold"])]
        return " ".join(shlex.quote(str(a)) for a in args)

    def paper_stats_json(self, wildcards) -> str:
        return _json(self.cfg(wildcards.dataset).get("paper_stats", {}))
