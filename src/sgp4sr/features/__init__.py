"""Item features: one float32 matrix per modality, row = item index, row 0 = padding.

Modules: ``text`` (item text, sentence-transformers), ``clip`` (open_clip for
images and text), ``handcrafted`` (a weight-free colour + gradient histogram of
the pixels: the offline demo's image encoder), ``images`` (fetch, cache, decode), ``published`` (the 2014
Amazon ``.b`` file), ``benchmark`` (``.npy`` shipped beside a split),
``noise`` (the paper's modality-noise variants), ``matrix`` (checks and
fallbacks shared by all of them), ``build`` (one modality end to end) and
``rules`` (the Snakemake rules' input/params helpers).
"""
