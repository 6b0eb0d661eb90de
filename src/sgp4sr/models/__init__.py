"""Models: a shared base (:mod:`.base`), shared blocks (:mod:`.layers`), one file per model."""

from sgp4sr.models.registry import available_models, get_model_class

__all__ = ["available_models", "get_model_class"]
