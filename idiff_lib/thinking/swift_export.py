"""Training rows for ms-swift (the iDiff recipe's trainer): SFT and GRPO shapes."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from idiff_lib.core.errors import ParameterError
from idiff_lib.data import pairs as pairs_mod
from idiff_lib.thinking import prompts as prompts_mod


def swift_records(
    pairs: Sequence[pairs_mod.Pair],
    prompts: Mapping[str, prompts_mod.Prompt],
    shape: str = "sft",
) -> list[dict]:
    """Rows for ms-swift: ``{"messages": [...], "images": [abs paths]}`` (+ ``"solution"`` for GRPO).

    ms-swift's multimodal format takes ``<image>`` placeholders in the user text and the image
    paths in ``images``; an SFT row ends with the assistant's completion, a GRPO row carries the
    reference in ``solution`` for its accuracy/format rewards.
    """
    if shape not in ("sft", "grpo"):
        raise ParameterError(f"export shape must be 'sft' or 'grpo', got {shape!r}")
    rows = []
    for pair in pairs:
        if pair.answer is None:
            raise pair.error("cannot export an unlabeled pair for training", "export a labelled split")
        images = [str(pair.image_path(i).resolve()) for i in range(len(pair.image_refs))]
        messages = prompts[pair.id].records()
        completion = pairs_mod.format_completion(pair.thinking, pair.answer)
        row: dict[str, Any] = {"id": pair.id, "messages": messages, "images": images}
        if shape == "sft":
            row["messages"] = messages + [{"role": "assistant", "content": completion}]
        else:
            row["solution"] = completion
        rows.append(row)
    return rows
