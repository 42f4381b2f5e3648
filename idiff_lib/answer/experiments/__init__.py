"""A trained Answer run: the ensemble and its ensemblers, the run on disk, notebook 02's ladders, notebook 04's calibration, statistics and explanations, and the walkthrough of one pair."""
