"""Training the Thinking Model: examples and batches, the accelerate loop and its checkpoints, one run and the stage ladder, GRPO (its settings, checked rows and trainer), and the ms-swift rows."""
