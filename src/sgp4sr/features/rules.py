"""Input/params helpers of the features stage's rules (workflow/rules/features.smk).

Kept out of the rule file so it holds rules only (``snakemake --lint``) and so
the config -> files logic is unit-tested. :class:`FeatureRules` keeps the
validated config; its bound methods take Snakemake's ``wildcards``.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Any, Mapping

from sgp4sr import layout
from sgp4sr.features.build import PIXEL_ENCODERS, resolve_modality, source_file_for
from sgp4sr.features.noise import DEFAULT_NOISE_RATIOS, noisy_name

# Per-job memory (MB) and runtime (minutes) by encoder. CLIP on images is the
# long one (downloads + one ViT pass per image on a CPU); published holds the
# kept 4096-d rows (~380 MB on Clothing) plus its read buffer.
MEM_MB = {"sentence": 4000, "clip": 6000, "histogram": 2000, "published": 4000, "benchmark": 2000}
RUNTIME_MIN = {"sentence": 60, "clip_image": 240, "clip_text": 60, "histogram": 60, "published": 120,
               "benchmark": 10}


class FeatureRuleError(ValueError):
    """A rule asked for a modality the dataset does not configure."""


class FeatureRules:
    def __init__(self, config: Mapping[str, Any], resources_dir: str = "resources") -> None:
        self.config = config
        self.resources = resources_dir
        self._images: dict[str, list[str]] = {}  # dataset -> its raw image files, listed once per DAG

    # -- paths ----------------------------------------------------------------------------
    @staticmethod
    def features_dir(dataset: str) -> str:
        return layout.features_dir(dataset)

    def download_dir(self, wildcards) -> str:
        return layout.download_dir(self.resources, wildcards.dataset)

    def cache_dir(self, wildcards) -> str:
        return layout.images_dir(self.resources, wildcards.dataset)

    # -- config ---------------------------------------------------------------------------
    def modalities(self, dataset: str) -> list[str]:
        return list(self.config["datasets"][dataset].get("modalities", {}))

    def modality(self, dataset: str, modality: str) -> dict[str, Any]:
        mods = self.config["datasets"][dataset].get("modalities", {})
        if modality not in mods:
            raise FeatureRuleError(
                f"dataset {dataset!r} has no modality {modality!r}; configured: {', '.join(mods) or 'none'}"
            )
        return resolve_modality(mods[modality])

    def noise_ratios(self, dataset: str) -> list[float]:
        return list(self.config["datasets"][dataset].get("noise_ratios", DEFAULT_NOISE_RATIOS))

    def targets(self, dataset: str) -> list[str]:
        """The manifest, every clean matrix and every configured noise variant (none without modalities)."""
        names = self.modalities(dataset)
        if not names:
            return []
        out = self.features_dir(dataset)
        targets = [f"{out}/manifest.parquet"]
        for modality in names:
            targets.append(f"{out}/{modality}.npy")
            targets += [f"{out}/{noisy_name(modality, r)}.npy" for r in self.noise_ratios(dataset)]
        return targets

    # -- rule inputs and params -------------------------------------------------------------
    def source(self, wildcards) -> str:
        """The .b / .npy file a published or benchmark modality reads; "" for the encoders."""
        self.modality(wildcards.dataset, wildcards.modality)
        path = source_file_for(self.config["datasets"][wildcards.dataset], wildcards.modality,
                               self.download_dir(wildcards))
        return path or ""

    def source_arg(self, wildcards) -> str:
        """``--source-file <path>`` (shell-quoted) or nothing: an empty quoted value would vanish."""
        path = self.source(wildcards)
        return f"--source-file {shlex.quote(path)}" if path else ""

    def source_input(self, wildcards) -> list[str]:
        path = self.source(wildcards)
        return [path] if path else []

    def image_inputs(self, wildcards) -> list[str]:
        """The raw local images an image-encoding job reads, so that new or changed images rerun it.

        A demo dataset's images are the ``images`` folder its ``demo_data`` job writes (a directory
        output: rerunning that job reruns this one); another dataset's, the files under
        ``<downloads>/images/`` when that folder exists (relative image paths resolve against the
        downloads folder). Downloaded images are not inputs: the cache checks them (features/images.py).
        """
        cfg = self.modality(wildcards.dataset, wildcards.modality)
        if cfg["encoder"] not in PIXEL_ENCODERS or cfg.get("input", "image") != "image":
            return []
        return self._raw_images(wildcards.dataset)

    def _raw_images(self, dataset: str) -> list[str]:
        if dataset not in self._images:
            self._images[dataset] = self._list_images(dataset)
        return self._images[dataset]

    def _list_images(self, dataset: str) -> list[str]:
        folder = f"{layout.download_dir(self.resources, dataset)}/images"
        if self.config["datasets"][dataset].get("source") == "demo":
            return [folder]
        if not os.path.isdir(folder):
            return []
        return sorted(os.path.join(root, name).replace(os.sep, "/") for root, _, names in os.walk(folder)
                      for name in names if not name.startswith("."))

    # -- IISAN's hidden-state cache (rule iisan_cache) -------------------------------------------
    def iisan_inputs(self, wildcards) -> dict[str, Any]:
        """The split's item table and the raw local images the frozen image encoder reads."""
        ds = wildcards.dataset
        return {"item_table": f"{layout.data_dir(ds)}/{layout.ITEMS_FILE}", "images": self._raw_images(ds)}

    def iisan_pretrained_arg(self, wildcards) -> str:
        from sgp4sr.config import dataset_model

        tag = dataset_model(self.config, wildcards.dataset, "iisan").get("image_pretrained")
        return f"--image-pretrained {tag}" if tag else ""

    def config_json(self, wildcards) -> str:
        return json.dumps(self.modality(wildcards.dataset, wildcards.modality), sort_keys=True)

    def mem_mb(self, wildcards) -> int:
        return MEM_MB[self.modality(wildcards.dataset, wildcards.modality)["encoder"]]

    def runtime(self, wildcards) -> int:
        cfg = self.modality(wildcards.dataset, wildcards.modality)
        key = f"clip_{cfg['input']}" if cfg["encoder"] == "clip" else cfg["encoder"]
        return RUNTIME_MIN[key]

    def manifest_inputs(self, wildcards) -> list[str]:
        out = self.features_dir(wildcards.dataset)
        return [f"{out}/{m}.manifest.parquet" for m in self.modalities(wildcards.dataset)]
