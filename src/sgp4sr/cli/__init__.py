"""Command line: ``sgp4sr <stage> ...``, one module per stage (see :mod:`sgp4sr.cli.main`)."""
