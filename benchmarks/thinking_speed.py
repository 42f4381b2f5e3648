"""Thinking-model speed on this machine: generation tokens/s per batch size and decoding (free or structure-
constrained), and one LoRA training step's seconds.
Writes ``benchmarks/results/thinking_speed.json``.

The model is a saved model folder (``--model FOLDER``: the tiny Qwen2-VL of `idiff think build-tiny`,
a downloaded checkpoint, a run's ``final/``) or ``small-vlm``: the small VLM of pretrained parts,
built once with `idiff_lib.thinking.model.small_vlm_build.build_small_vlm` into a cache folder beside the
output file (``--cache-dir``) and reused. It loads through `idiff_lib.thinking.model.checkpoints.load_model`.

The prompts are the real ones: the first ``--pairs`` pairs of ``--data`` (default the demo's test
split) at stage ``--stage`` (S3: template + CV + IQA cues; S4: + the reference answer as the
verdict), the cues computed by `side_inputs.calibrated_cues` (``--cue-sources``; cached per image)
or read from ``--cues`` (a file of `idiff think cues`). They are encoded by
`encoding.examples_for` (timed apart: image loading and the processor) and decoded greedily by
`generation.generate_ids` (what `generation.generate` decodes) at each of ``--batch-sizes``; the new
tokens are counted per example (a model that stops early is not credited with ``--max-new-tokens``,
nor with the padding of its batch). The training
step is one forward + backward + AdamW step with LoRA r=16 on every linear layer of the language
model (`lora.apply_lora`) over ``--train-batch`` pairs with their reference rationales, after one
untimed warm-up step. The load average is recorded at the start and the end: the machine may be shared.

Usage: .venv/bin/python benchmarks/thinking_speed.py [--model small-vlm] [--pairs 8] [--batch-sizes 1,8] [--no-copy-evidence]
       .venv/bin/python benchmarks/thinking_speed.py --model runs/demo/03_tune_thinking_model/model/S4/final \\
           --stage S4 --out benchmarks/results/thinking_speed_tiny.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from idiff_lib.core import paths, storage
from idiff_lib.data.pairs import read_pairs
from idiff_lib.thinking.prompting import prompts
from idiff_lib.thinking.model.checkpoints import load_model
from idiff_lib.thinking.train.encoding import collate, context_length, examples_for
from idiff_lib.thinking.prompting.evidence import parse_evidence
from idiff_lib.thinking.decode.generation import generate_ids
from idiff_lib.thinking.thinking_settings import ThinkingSettings
from idiff_lib.thinking.prompting.side_inputs import calibrated_cues, iqa_sources_of, read_id_table


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small-vlm", help="'small-vlm' (built into --cache-dir) or a model folder")
    parser.add_argument("--cache-dir", default="", help="where 'small-vlm' is built (default: beside --out)")
    parser.add_argument("--data", default=str(paths.DEMO_DIR / "test_sft.jsonl"), help="a labelled pairs JSONL")
    parser.add_argument("--pairs", type=int, default=8, help="pairs whose prompts are timed (the first N of --data)")
    parser.add_argument("--stage", default="S3", choices=("S3", "S4"), help="the prompt stage (S4: + the verdict)")
    parser.add_argument("--cues", default="", help="a cue file of `idiff think cues` instead of computing the cues")
    parser.add_argument("--cue-sources", default="cv,iqa", help="cue sources computed when --cues is not given")
    parser.add_argument("--answer-run", default="", help="a run (or its 02 folder) whose aspect heads give the S3/S4 "
                        "evidence blocks (default: none, the blocks say 'unavailable')")
    parser.add_argument("--batch-sizes", default="1,8", help="comma-separated generation batch sizes")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--decodings", default="free,constrained",
                        help="comma-separated: free greedy decoding and/or constrained (`generation.AgreementConstraint`)")
    parser.add_argument("--copy-evidence", action=argparse.BooleanOptionalAction, default=ThinkingSettings.copy_evidence,
                        help="constrained decoding copies the prompts' evidence lines through (default: the cpu profile's)")
    parser.add_argument("--no-repeat-ngram-size", type=int, default=ThinkingSettings.no_repeat_ngram_size,
                        help="the greedy decoding guard (default: the cpu profile's)")
    parser.add_argument("--max-pixels", type=int, default=ThinkingSettings.max_pixels,
                        help="per-image pixel budget at encoding (default: the cpu profile's; 0: the processor's own)")
    parser.add_argument("--train-batch", type=int, default=2, help="pairs in the timed LoRA step (0: no training step)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(paths.PROJ_ROOT / "benchmarks" / "results" / "thinking_speed.json"))
    return parser.parse_args()


def _model_folder(args: argparse.Namespace) -> Path:
    """The folder to load: --model, or the small VLM built once into the cache folder."""
    if args.model != "small-vlm":
        return Path(args.model)
    from idiff_lib.thinking.model.small_vlm_build import build_small_vlm

    folder = Path(args.cache_dir) if args.cache_dir else Path(args.out).resolve().parent / "thinking_speed_small_vlm"
    if not (folder / "config.json").exists():
        t0 = time.perf_counter()
        build_small_vlm(folder)
        print(f"small VLM built into {folder} in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def _prompts(args: argparse.Namespace, pairs: list) -> tuple[dict, str]:
    """The stage's prompts for `pairs` and a note on where their cues came from."""
    if args.cues:
        cues, note = read_id_table(args.cues), f"cues read from {args.cues}"
    else:
        sources = tuple(s for s in args.cue_sources.split(",") if s)
        cues, note = calibrated_cues(pairs, sources=sources, progress=False)
    if args.answer_run:
        from idiff_lib.chain.export import with_run_evidence

        cues, note = with_run_evidence(cues, note, pairs, args.answer_run)
    answers = {p.id: {"answer": p.answer, "p_answer": None} for p in pairs}
    built = prompts.build_prompts(pairs, args.stage, cues=cues, answers=answers,
                                      vocabulary=prompts.load_vocabulary())
    sources = iqa_sources_of(cues)
    return built, note + (f"; IQA cues from: {sources}" if sources else "")


def _time_generation(model, processor, examples: list, batch: int, max_new_tokens: int, decoding: str = "free",
                     answers: list | None = None, no_repeat_ngram_size: int = 0, evidence: list | None = None) -> dict:
    """Greedy decoding (with the KV cache) of every example at batch size `batch`: seconds, new tokens and tokens/s.

    ``tokens_per_s`` is end to end (the prompts' prefill included); ``decode_tokens_per_s`` leaves out a
    run of the same batches that stops after one new token (the prefill, the images' encoding and the
    first token), so the two together say whether the prompt or the decoding loop takes the time.
    `evidence` (constrained decoding only): each example's evidence lines to copy through.
    """
    generate_ids(model, processor, examples[:1], batch_size=1, max_new_tokens=2, progress=False)  # warm-up
    options = dict(batch_size=batch, progress=False, constrained=decoding == "constrained", answers=answers,
                   no_repeat_ngram_size=no_repeat_ngram_size, evidence=evidence if decoding == "constrained" else None)
    t0 = time.perf_counter()
    generate_ids(model, processor, examples, max_new_tokens=1, **options)
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids = generate_ids(model, processor, examples, max_new_tokens=max_new_tokens, **options)
    seconds = time.perf_counter() - t0
    tokens = sum(len(row) for row in ids)
    decode = max(seconds - prefill, 1e-9)
    return {"decoding": decoding, "copy_evidence": bool(evidence) and decoding == "constrained", "batch_size": batch,
            "pairs": len(examples), "seconds": round(seconds, 3), "prefill_seconds": round(prefill, 3),
            "new_tokens": tokens, "no_repeat_ngram_size": no_repeat_ngram_size,
            "tokens_per_s": round(tokens / seconds, 2),
            "decode_tokens_per_s": round(max(tokens - len(examples), 0) / decode, 2),
            "pairs_per_s": round(len(examples) / seconds, 3), "seconds_per_pair": round(seconds / len(examples), 3)}


def _time_lora_step(model, processor, pairs: list, built: dict, max_pixels: int | None) -> dict:
    """One LoRA forward + backward + AdamW step over `pairs` (after one untimed warm-up step)."""
    from idiff_lib.thinking.model.lora import apply_lora

    examples = examples_for(pairs, built, processor, with_targets=True, max_pixels=max_pixels, progress=False)
    batch = collate([{k: v for k, v in ex.items() if k != "id"} for ex in examples],
                    processor.tokenizer.pad_token_id, "right")
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    peft_model = apply_lora(model, log=lambda _: None)
    peft_model.train()
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)

    def step() -> float:
        loss = peft_model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    step()
    t0 = time.perf_counter()
    loss = step()
    seconds = time.perf_counter() - t0
    tokens = int(batch["attention_mask"].sum())
    return {"pairs": len(pairs), "tokens": tokens, "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
            "loss": round(loss, 4), "trainable_params": sum(p.numel() for p in trainable)}


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)
    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "threads": args.threads, "device": args.device, "torch": torch.__version__,
                                 "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}}
    folder = _model_folder(args)
    # a LoRA run folder is merged, as notebook 03 decodes it (`run.load_thinking_run`)
    model, processor = load_model(str(folder), device=args.device, gradient_checkpointing=False, merge_adapter=True)
    pairs = list(read_pairs(args.data, require_images=True, limit=args.pairs))
    built, cue_note = _prompts(args, pairs)
    context = context_length(model)
    max_pixels = args.max_pixels or None
    t0 = time.perf_counter()
    examples = examples_for(pairs, built, processor, with_targets=False, max_pixels=max_pixels, progress=False,
                            max_length=context - args.max_new_tokens if context else None)
    encode_seconds = time.perf_counter() - t0
    prompt_tokens = [int(ex["input_ids"].shape[1]) for ex in examples]
    results["settings"] = {"model": args.model, "model_folder": str(folder), "model_class": type(model).__name__,
                           "parameters": sum(p.numel() for p in model.parameters()), "data": str(args.data),
                           "pairs": len(pairs), "stage": args.stage, "cues": cue_note,
                           "max_new_tokens": args.max_new_tokens, "max_pixels": args.max_pixels,
                           "prompt_tokens_mean": round(sum(prompt_tokens) / len(prompt_tokens), 1),
                           "prompt_tokens_max": max(prompt_tokens)}
    results["encode"] = {"seconds": round(encode_seconds, 3), "seconds_per_pair": round(encode_seconds / len(pairs), 4)}
    results["generation"] = []
    answers = [built[p.id].answer for p in pairs]
    evidence = [parse_evidence(built[p.id].user) for p in pairs] if args.copy_evidence else None
    for decoding in [d for d in args.decodings.split(",") if d]:
        for batch in [int(b) for b in args.batch_sizes.split(",") if b]:
            row = _time_generation(model, processor, examples, batch, args.max_new_tokens, decoding, answers,
                                   args.no_repeat_ngram_size, evidence)
            results["generation"].append(row)
            print("generation", row, flush=True)
    if args.train_batch:
        results["lora_step"] = _time_lora_step(model, processor, pairs[:args.train_batch], built, max_pixels)
        print("lora_step", results["lora_step"], flush=True)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["paper_reference"] = "0.75 s per pair for the paper's Thinking model (Qwen3-VL-8B) on an NVIDIA H20"
    storage.write_json(Path(args.out), results)
    print(results)


if __name__ == "__main__":
    main()
