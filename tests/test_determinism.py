"""`idiff_lib.core.determinism`: each step's thread count reaches every library, whatever the machine's.

The checks that set torch's threads or its deterministic mode run in a child process, so this
test session's own settings are left as they are.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from idiff_lib.chain import runner
from idiff_lib.core import determinism, paths

# A child process: apply a step's settings (through `notebook_context` as a notebook does, or, with no
# step, `configure` alone before torch is loaded), then report what each library was set to and the
# bits of a few torch computations.
_CHILD = r"""
import hashlib, json, os, sys
from idiff_lib.core.determinism import THREAD_VARS, configure

step, threads, folder = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
if step:  # as a notebook does
    from idiff_lib.chain import context, runner

    names = {k: folder for k in ("data_dir", "run_dir", "step_dir", "fig_dir")}
    ns = {"__annotations__": {**{k: "str" for k in names}, **({"threads": "int"} if threads is not None else {})},
          **names, **({"threads": threads} if threads is not None else {})}
    context.notebook_context(ns, step)
else:  # a process that has not loaded torch
    configure(threads)
torch_before = "torch" in sys.modules
import cv2, torch
from threadpoolctl import threadpool_info

def bits(t):
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()

torch.manual_seed(0)
# a small model trained a few steps: products, softmax, GELU, AdamW; each value summed by one thread
net = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.GELU(), torch.nn.Linear(96, 5))
opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
x, y = torch.randn(32, 64), torch.randint(0, 5, (32,))
for _ in range(5):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
whole = bits(torch.cat([p.detach().reshape(-1) for p in net.parameters()]))
# sums split between threads: a million values, a convolution's and a LayerNorm's weight gradients
conv, norm = torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.LayerNorm(96)
conv(torch.randn(8, 8, 24, 24)).square().mean().backward()
norm(torch.randn(256, 96)).square().mean().backward()
split = bits(torch.randn(1_000_000).sum()) + bits(conv.weight.grad) + bits(norm.weight.grad)
print(json.dumps({
    "torch_before": torch_before, "torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
    "deterministic": torch.are_deterministic_algorithms_enabled(),
    "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(), "cv2": cv2.getNumThreads(),
    "pools": sorted({p["num_threads"] for p in threadpool_info()}),
    "env": {v: os.environ.get(v) for v in THREAD_VARS},
    "whole": whole, "split": split}))
"""


def _child(tmp_path: Path, step: str, threads: int | None, env: dict[str, str]) -> dict:
    ours = (*determinism.THREAD_VARS, *determinism.LIBRARY_ENV, determinism.THREADS_ENV)
    base = {k: v for k, v in os.environ.items() if k not in ours}
    out = subprocess.run([sys.executable, "-c", _CHILD, step, json.dumps(threads), str(tmp_path)],
                         check=False, env={**base, **env}, cwd=paths.PROJ_ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_step_threads_setting_then_environment_then_default():
    assert determinism.step_threads(1, {determinism.THREADS_ENV: "3"}) == 1  # the step's own setting wins
    assert determinism.step_threads(0, {}) == 0  # 0: the libraries' own choice
    assert determinism.step_threads(None, {determinism.THREADS_ENV: " 3 "}) == 3
    assert determinism.step_threads(None, {}) == determinism.DEFAULT_THREADS
    assert determinism.step_threads(True, {}) == determinism.DEFAULT_THREADS  # a bool is not a count
    with pytest.raises(ValueError, match="IDIFF_THREADS='two' is not a thread count"):
        determinism.step_threads(None, {determinism.THREADS_ENV: "two"})


def test_kernel_env_fixes_hash_seed_and_every_thread_variable():
    env = determinism.kernel_env(1)
    assert env["PYTHONHASHSEED"] == "0" and env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert env["MKL_CBWR"] == "AUTO,STRICT"
    assert {env[v] for v in determinism.THREAD_VARS} == {"1"}
    assert not set(determinism.kernel_env(0)) & set(determinism.THREAD_VARS)  # 0 leaves the machine's counts


def test_the_kernel_is_launched_with_the_step_environment(tmp_path, monkeypatch):
    from jupyter_client.manager import AsyncKernelManager

    seen = {}

    async def launch(self, kernel_cmd, **kw):
        seen.update(kw)

    monkeypatch.setattr(AsyncKernelManager, "_async_launch_kernel", launch)
    manager = runner._logged_kernel_manager(tmp_path / "kernel.log", determinism.kernel_env(1))
    asyncio.run(manager()._async_launch_kernel(["python"], env={"KEEP": "yes", "OMP_NUM_THREADS": "16"}))
    assert seen["env"]["KEEP"] == "yes" and seen["env"]["PYTHONHASHSEED"] == "0"
    assert seen["env"]["OMP_NUM_THREADS"] == "1"  # the step's count, not the machine's
    assert "stderr" in seen


@pytest.mark.slow  # three child processes that load torch: about 15 s on 2 cores
def test_a_step_computes_at_its_own_thread_count_whatever_the_machine(tmp_path):
    # a step with a `threads` setting, on a "machine" whose OpenMP default is 2 threads
    one = _child(tmp_path, "02_train_answer_model", 1, {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"})
    assert (one["torch"], one["interop"], one["cv2"], one["pools"]) == (1, 1, 1, [1])
    assert one["deterministic"] and one["warn_only"]
    assert set(one["env"].values()) == {"1"}
    # no `threads` setting, torch loaded afterwards: IDIFF_THREADS reaches it through the environment
    lazy = _child(tmp_path, "", None, {determinism.THREADS_ENV: "1"})
    assert not lazy["torch_before"] and (lazy["torch"], lazy["cv2"]) == (1, 1)
    assert (lazy["whole"], lazy["split"]) == (one["whole"], one["split"])  # same count, same bits
    two = _child(tmp_path, "02_train_answer_model", 2, {})
    assert (two["torch"], two["cv2"], two["pools"]) == (2, 2, [2])
    # values each summed by one thread: the same bits at 1 and 2 threads, given MKL's strict mode
    # (without it a weight gradient's product here differs); the split sums may differ, hence the fixed count
    assert two["whole"] == one["whole"]


def test_repro_compares_every_metric_exactly(monkeypatch):
    import importlib.util

    monkeypatch.syspath_prepend(str(paths.PROJ_ROOT / "benchmarks"))  # repro imports chain_time from there
    spec = importlib.util.spec_from_file_location("repro", paths.PROJ_ROOT / "benchmarks" / "repro.py")
    repro = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(repro)
    one = {"acc": 0.5, "rows": [{"p": 0.25, "name": "a"}], "nan": float("nan"), "seconds": 3.0, "flag": True,
           "gone": 1}
    two = {"acc": 0.5, "rows": [{"p": 0.25 + 2**-50, "name": "a"}], "nan": float("nan"), "seconds": 9.0, "flag": 1}
    out = repro.compare_metrics([one, two])
    assert out["timing_keys"] == ["seconds"] and out["metrics"] == 6
    assert [d["key"] for d in out["differing"]] == ["rows[0].p", "flag", "gone"]  # True is not 1; a missing key differs
    assert out["max_abs_diff"] == 2**-50 and out["identical"] == 3
    assert repro.is_timing("train_seconds.feature member") and repro.is_timing("grpo.wall_s")
    assert not repro.is_timing("answer_counts[3].source")


def test_each_test_worker_runs_at_its_share_of_the_cores():
    """conftest gives each pytest-xdist worker cores // workers threads, before any library loads."""
    import torch
    from conftest import TEST_THREADS

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    assert TEST_THREADS == max(1, (os.cpu_count() or 1) // workers)
    assert torch.get_num_threads() == TEST_THREADS
    assert all(os.environ[var] == str(TEST_THREADS) for var in (determinism.THREADS_ENV, *determinism.THREAD_VARS))
