"""Training the Thinking Model: examples and batches, the accelerate loop and its checkpoints, one run and the stage ladder, GRPO, and the ms-swift rows."""
