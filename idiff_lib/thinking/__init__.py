"""The Thinking Model: prompt stages, model build, LoRA, training, generation, baselines and export."""
