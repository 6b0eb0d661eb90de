# Rules of the train stage (see docs/architecture.md).
