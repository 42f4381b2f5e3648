"""benchmarks/answer_speed.py on a tiny member: the per-member rows, the ensemble pass over real pairs, the load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_answer_speed_times_every_member_and_the_ensemble_on_real_pairs(tmp_path):
    out = tmp_path / "speed.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "answer_speed.py"), "--backbones", "resnet10t,resnet10t",
           "--pooling", "stats", "--no-pretrained", "--img-sizes", "32", "--pairs", "2", "--repeats", "1",
           "--threads", "1", "--skip-train", "--no-end-to-end", "--data", str(ROOT / "data" / "demo" / "test_sft.jsonl"),
           "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IDIFF_PROGRESS": "off"}
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    res = json.loads(out.read_text())
    assert res["settings"]["pooling"] == "stats" and res["settings"]["pretrained"] is False
    assert res["settings"]["train_batch"] is None and "train_pairs_per_s" not in res["members"]["resnet10t"]
    assert res["members"]["resnet10t"]["inference_pairs_per_s"] > 0
    assert res["ensemble_networks"]["pairs"] == 2 and res["ensemble_networks"]["pairs_per_s"] > 0
    assert len(res["ensemble_networks"]["members"]) == 2
    assert len(res["machine"]["load_average_at_start"]) == 3 and "load_average_at_end" in res["machine"]
