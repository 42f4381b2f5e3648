"""GPU check of the Thinking Model at the paper's scale: LoRA training steps and generation in bf16.

Builds a randomly initialised model with the public dimensions of the paper's Qwen3-VL-8B
(``--arch qwen3-vl-8b``, the default: ``idiff_lib/configs/qwen3_vl_8b.json``, 8.77 B parameters) or of
Qwen2.5-VL-7B (``--arch qwen2.5-vl-7b``: ``idiff_lib/configs/qwen2_5_vl_7b.json``), no download,
attaches LoRA r=16 to every linear layer of the language model (`idiff_lib.thinking.model.lora.LoraSettings`),
and times, with two images per pair at the pixel budget given:

- training steps (forward + backward + AdamW) with gradient checkpointing: step time,
  tokens/s, peak GPU memory;
- greedy generation of a fixed number of new tokens, with the LoRA adapter folded into the weights
  (as `idiff_lib.thinking.train.run.load_thinking_run` serves it) and, for comparison, unmerged: seconds per pair, prefill
  seconds and decode tokens/s, beside the paper's 0.75 s per pair on an H20.

No tokenizer is needed: the token ids are drawn at random around the image placeholders that
the Qwen2-VL image processor sizes (14 px patches for Qwen2.5-VL, 16 px for Qwen3-VL). Timings from
random weights are valid for speed and memory, not for quality.

Usage (GPU):  python benchmarks/gpu_thinking_check.py --out benchmarks/results/gpu_thinking_check.json
              python benchmarks/gpu_thinking_check.py --arch qwen2.5-vl-7b --out benchmarks/results/gpu_thinking_check_qwen2_5.json
CPU smoke test of the setup: python benchmarks/gpu_thinking_check.py --tiny --device cpu --steps 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "idiff_lib" / "configs"
# --arch: the config JSON, transformers' config and model classes.
ARCHES = {
    "qwen3-vl-8b": ("qwen3_vl_8b.json", "Qwen3VLConfig", "Qwen3VLForConditionalGeneration"),
    "qwen2.5-vl-7b": ("qwen2_5_vl_7b.json", "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration"),
}
DEFAULT_ARCH = "qwen3-vl-8b"  # the paper's Thinking Model
PAPER_SECONDS_PER_PAIR_H20 = 0.75
# Pixel budget per image: the RAIM-PIQA 1536 release's merged views, 1536 x 768 (A|B side by side).
PAPER_IMAGE_SIZE = (1536, 768)


def _tiny_sizes(data: dict, arch: str) -> None:
    """Shrink every size of a config dict in place (CPU smoke test); the vocabulary stays."""
    text, vision = data["text_config"], data["vision_config"]
    text.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2)
    vision.update(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64)
    rope = {"rope_type": "default", "rope_theta": text["rope_parameters"]["rope_theta"], "mrope_section": [2, 3, 3]}
    if arch == "qwen3-vl-8b":
        text.update(head_dim=16, rope_parameters={**rope, "mrope_interleaved": True})
        vision.update(num_position_embeddings=64, deepstack_visual_indexes=[0])
    else:
        text.update(max_window_layers=2, rope_parameters=rope)
        vision.update(fullatt_block_indexes=[1])


def load_config(path: Path | None = None, tiny: bool = False, arch: str = DEFAULT_ARCH):
    """The transformers config of `arch` from the project's JSON (or `path`); `tiny` shrinks every size.

    Args:
        path: a config JSON in the layout of ``idiff_lib/configs/qwen3_vl_8b.json`` (default: the arch's).
        tiny: shrink the model to a few layers of width 64 (CPU smoke test of the scripts).
        arch: a key of `ARCHES`.

    Raises:
        SystemExit: an unknown `arch`.
    """
    import transformers

    if arch not in ARCHES:
        raise SystemExit(f"unknown --arch {arch!r}: choose one of {', '.join(ARCHES)}")
    file_name, config_class, _ = ARCHES[arch]
    path = Path(path) if path else CONFIG_DIR / file_name
    data = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_") and k != "model_type"}
    if tiny:
        _tiny_sizes(data, arch)
    return getattr(transformers, config_class)(**data)


def build_model(config, device: str, dtype: torch.dtype):
    """Random-init model of the config's class (Qwen3-VL or Qwen2.5-VL) on `device` (weights created there)."""
    import transformers

    name = next(model for _, config_class, model in ARCHES.values() if type(config).__name__ == config_class)
    torch.manual_seed(0)
    with torch.device(device):
        model = getattr(transformers, name)._from_config(config, dtype=dtype)
    return model


def make_batch(config, image_size: tuple[int, int], prompt_tokens: int, target_tokens: int, device: str,
               max_pixels: int | None = None) -> dict:
    """One pair: text, two images (global + detail) at `image_size`, a rationale with labels."""
    from PIL import Image
    from transformers import Qwen2VLImageProcessor

    w, h = image_size
    budget = max_pixels or w * h
    patch, merge_size = config.vision_config.patch_size, config.vision_config.spatial_merge_size
    unit = patch * merge_size  # pixels per visual token side after the merge
    processor = Qwen2VLImageProcessor(patch_size=patch, merge_size=merge_size, min_pixels=4 * unit * unit,
                                      max_pixels=budget)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for _ in range(2)]
    vision = processor(images=images, return_tensors="pt")
    merge = config.vision_config.spatial_merge_size ** 2
    vocab = config.text_config.vocab_size
    low = 1000 if vocab > 2000 else 10  # clear of the special-token ids
    ids: list[int] = []
    for grid in vision["image_grid_thw"]:
        ids += [config.vision_start_token_id] + [config.image_token_id] * int(grid.prod() // merge) + [config.vision_end_token_id]
    text_ids = lambda n: rng.integers(low, min(vocab, 150000), n).tolist()  # noqa: E731
    ids = text_ids(prompt_tokens // 2) + ids + text_ids(prompt_tokens - prompt_tokens // 2)
    prompt_len = len(ids)
    ids += text_ids(target_tokens)
    input_ids = torch.tensor([ids])
    labels = input_ids.clone()
    labels[:, :prompt_len] = -100
    mm_token_type_ids = (input_ids == config.image_token_id).int()  # 1 = image token: M-RoPE's 3-D positions
    return {"input_ids": input_ids.to(device), "attention_mask": torch.ones_like(input_ids).to(device),
            "mm_token_type_ids": mm_token_type_ids.to(device),
            "labels": labels.to(device), "pixel_values": vision["pixel_values"].to(device),
            "image_grid_thw": vision["image_grid_thw"].to(device), "prompt_len": prompt_len}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_generate(model, inputs: dict, n_tokens: int, device: str) -> dict:
    """Greedy generation of `n_tokens` (after a warm-up): total seconds, a 1-token run's seconds
    (prefill), the new tokens and decode tokens/s after the first one."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False, use_cache=True)  # warm-up
        _sync(device)
        t = time.perf_counter()
        model.generate(**inputs, max_new_tokens=1, min_new_tokens=1, do_sample=False, use_cache=True)
        _sync(device)
        prefill_s = time.perf_counter() - t
        t = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=n_tokens, min_new_tokens=n_tokens, do_sample=False, use_cache=True)
        _sync(device)
    seconds = time.perf_counter() - t
    new = out.shape[1] - inputs["input_ids"].shape[1]
    return {"seconds": seconds, "prefill_seconds": prefill_s, "new_tokens": int(new),
            "decode_tokens_per_second": (new - 1) / max(1e-9, seconds - prefill_s)}


def run(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    from idiff_lib.thinking.model.lora import LoraSettings, apply_lora

    device = args.device
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    config = load_config(args.config, tiny=args.tiny, arch=args.arch)
    t0 = time.perf_counter()
    model = build_model(config, device, dtype)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    if device.startswith("cuda"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
        torch.cuda.reset_peak_memory_stats()
    lines: list[str] = []
    model = apply_lora(model, LoraSettings(r=16, alpha=32, dropout=0.05), log=lines.append)
    image_size = (args.image_width, args.image_height)
    batch = make_batch(config, image_size, args.prompt_tokens, args.target_tokens, device, args.max_pixels)
    prompt_len = batch.pop("prompt_len")
    seq_len = batch["input_ids"].shape[1]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    step_times = []
    for _ in range(args.warmup + args.steps):
        _sync(device)
        t = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        step_times.append(time.perf_counter() - t)
    timed = step_times[args.warmup:]
    train_peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    model.eval()
    if device.startswith("cuda"):  # generate as served: no activation checkpointing, the KV cache on
        model.gradient_checkpointing_disable()
    gen_inputs = {k: v[:, :prompt_len] if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v
                  for k, v in batch.items() if k != "labels"}
    unmerged = _time_generate(model, gen_inputs, args.gen_tokens, device)
    merged = _time_generate(model.merge_and_unload(), gen_inputs, args.gen_tokens, device)  # as load_thinking_run serves it
    gen_s, new_tokens = merged["seconds"], merged["new_tokens"]
    return {
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "arch": args.arch,
        "config": Path(args.config or CONFIG_DIR / ARCHES[args.arch][0]).name + (" (tiny)" if args.tiny else ""),
        "params_b": round(n_params / 1e9, 3),
        "lora": lines[-1] if lines else "",
        "build_seconds": round(build_s, 1),
        "image_size": list(image_size),
        "max_pixels": args.max_pixels,
        "image_tokens": int(sum(int(g.prod()) for g in batch["image_grid_thw"]) // config.vision_config.spatial_merge_size ** 2),
        "sequence_tokens": seq_len,
        "train_step_seconds": round(float(np.median(timed)), 4),
        "train_tokens_per_second": round(seq_len / float(np.median(timed)), 1),
        "train_peak_memory_gib": round(train_peak, 2) if train_peak is not None else None,
        "generate_new_tokens": int(new_tokens),
        "generate_seconds_per_pair": round(gen_s, 3),
        "generate_new_tokens_per_second": round(new_tokens / gen_s, 1),
        "generate_prefill_seconds": round(merged["prefill_seconds"], 3),
        "generate_decode_tokens_per_second": round(merged["decode_tokens_per_second"], 1),
        "generate_peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
        "generate_lora_unmerged_seconds_per_pair": round(unmerged["seconds"], 3),
        "generate_lora_unmerged_decode_tokens_per_second": round(unmerged["decode_tokens_per_second"], 1),
        "paper_seconds_per_pair_h20": PAPER_SECONDS_PER_PAIR_H20,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=DEFAULT_ARCH, choices=sorted(ARCHES),
                   help="model dimensions: the paper's Qwen3-VL-8B (default) or Qwen2.5-VL-7B")
    p.add_argument("--config", default=None, help="a config JSON in place of the arch's own")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="shrink the model (CPU smoke test of this script)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--image-width", type=int, default=PAPER_IMAGE_SIZE[0])
    p.add_argument("--image-height", type=int, default=PAPER_IMAGE_SIZE[1])
    p.add_argument("--max-pixels", type=int, default=PAPER_IMAGE_SIZE[0] * PAPER_IMAGE_SIZE[1])
    p.add_argument("--prompt-tokens", type=int, default=400, help="text tokens of the S4 prompt besides the images")
    p.add_argument("--target-tokens", type=int, default=200, help="rationale tokens")
    p.add_argument("--gen-tokens", type=int, default=200, help="new tokens per generated rationale")
    p.add_argument("--out", help="write the results JSON here")
    return p.parse_args(argv)


def run_check(args: argparse.Namespace, run_fn) -> dict:
    """Refuse a missing GPU, run `run_fn(args)`, print its JSON and write it to ``args.out`` (both GPU checks)."""
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or use --tiny --device cpu for a smoke test")
    result = run_fn(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return result


def main(argv: list[str] | None = None) -> dict:
    return run_check(parse_args(argv), run)


if __name__ == "__main__":
    main()
