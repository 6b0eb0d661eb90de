# Rules of the features stage (see docs/architecture.md).
