# Rules of the graphs stage (see docs/architecture.md).
