# Rules of the report stage (see docs/architecture.md).
