"""The papermill chain: the runner, the run folder layout, settings, and the export of a run."""
