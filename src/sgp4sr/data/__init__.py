"""Data stage: download, parse, k-core, split, stats, demo shop, benchmark import, loading.

Every later stage reads the ``results/<ds>/data/`` folder through
:func:`sgp4sr.data.load.load_split`; the other modules produce it.
"""
