"""sgp4sr: data, features, graphs, models and reports for the SGP4SR reproduction workflow."""

__version__ = "0.1.0"
