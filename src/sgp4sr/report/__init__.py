"""The results stage: which runs each experiment needs, and the tables and figures built from them.

``plan`` turns the config into run paths (used by the Snakemake rules and the
``all`` target list), ``runs`` reads finished runs, ``tables``/``figures``/
``significance``/``tuning`` compute what a person reads.
"""
