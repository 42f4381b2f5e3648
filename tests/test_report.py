import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from idiff_lib.core import layout
from idiff_lib.report import html_report


@pytest.fixture
def run_dir(tmp_path):
    """A run folder holding the recorded outputs the report reads (values made up for the test)."""
    (tmp_path / layout.ANSWER_STEP).mkdir()
    rows = []  # as notebook 02 writes it: one row per ladder row, <category>_acc/_lo/_hi/_n columns
    for i, name in enumerate(["merged", "split", "specialists", "ensemble", "split (no pretraining)"]):
        row = {"row": name, "description": name, "kind": "rung" if i < 4 else "ablation", "members": 1}
        for cat in ("person", "scene", "overall"):
            acc = 0.6 + 0.1 * i if i < 4 else 0.5
            row.update({f"{cat}_acc": acc, f"{cat}_lo": acc - 0.05, f"{cat}_hi": acc + 0.05, f"{cat}_n": 10})
        rows.append(row)
    pd.DataFrame(rows).to_csv(tmp_path / layout.ANSWER_STEP / layout.ANSWER_LADDER_FILE, index=False)
    (tmp_path / layout.SCORING_STEP).mkdir()
    # bleu4 on the workbench's 0-1 scale, as notebook 05 records it
    rows = [{"system": s, "stage": f"S{k}", "bleu4": 0.1 * k, "rouge_l": 0.2 + 0.05 * k, "aspect_f1": 0.5,
             "consistency": 0.9} for s in ("template", "tiny") for k in range(5)]
    pd.DataFrame(rows).to_csv(tmp_path / layout.SCORING_STEP / layout.SCORING_LADDER_FILE, index=False)
    return tmp_path


def test_tables_put_ours_beside_the_paper(run_dir, tmp_path):
    a = html_report.answer_table(run_dir)
    assert list(a["rung"]) == list(html_report.PAPER_ANSWER_LADDER) + ["+ L/R split views (no pretraining)"]
    assert list(a["kind"]) == ["rung"] * 4 + ["ablation"]
    assert a.loc[0, "ours overall"] == "0.600 [0.550, 0.650]" and a.loc[3, "paper overall (RAIM val)"] == "0.912"
    assert a.loc[4, "ours person"] == "0.500 [0.450, 0.550]" and a.loc[4, "paper overall (RAIM val)"] == "–"
    b = html_report.thinking_table(run_dir)
    assert b.iloc[1]["BLEU-4"] == "0.100", "BLEU-4 is shown on the paper's 0-1 scale"
    assert len(b) == 10 and b.iloc[0]["paper BLEU-4 / ROUGE-L (RAIM)"] == "0.022 / 0.220"
    assert b.iloc[1]["paper BLEU-4 / ROUGE-L (RAIM)"] == "0.086 / 0.283"
    paths = html_report.write_table(a, "table_a", tmp_path / "out", "Answer ladder")
    assert "| rung" in paths["md"].read_text() and "\\begin{table}" in paths["tex"].read_text()


def test_the_saved_ensemble_is_the_feature_row_when_the_run_has_one(run_dir):
    a = html_report.answer_table(run_dir)
    assert html_report.saved_ensemble_cell(a) == a.loc[a["rung"] == "+ backbone ensemble", "ours overall"].iloc[0]
    with_feature = pd.concat([a, pd.DataFrame([{"rung": "+ feature member", "kind": "ours",
                                                "ours overall": "0.695 [0.583, 0.739]"}])], ignore_index=True)
    assert html_report.saved_ensemble_cell(with_feature) == "0.695 [0.583, 0.739]"


def test_figures_draw(run_dir):
    for plot in (html_report.answer_ladder_plot(run_dir), html_report.thinking_ladder_plot(run_dir)):
        assert plot.figure.axes and plot.figure.axes[0].get_ylabel() and plot.caption.endswith(".")


def test_html_report_loads_in_headless_chromium(run_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    fig = tmp_path / "ladder.png"
    Image.fromarray(np.full((40, 80, 3), 200, np.uint8)).save(fig)
    index = html_report.build_html_report(run_dir, tmp_path / "html", {"Table A": html_report.answer_table(run_dir)}, [fig])
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,900"]
    dom = subprocess.run(flags + ["--dump-dom", index.as_uri()], capture_output=True, text=True, timeout=120)
    assert "result-table" in dom.stdout and "+ backbone ensemble" in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", index.as_uri()], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 5, "the screenshot is blank"


def test_table_b_caption_names_the_cues_notebook_03_recorded(run_dir):
    assert html_report.table_b_caption(run_dir) == html_report.TABLE_B_NOTE, "no notebook 03 metrics: the plain note"
    metrics = run_dir / layout.THINKING_STEP / layout.METRICS_FILE
    metrics.parent.mkdir()
    metrics.write_text('{"cues": "feature cues switched off (use_feature_cues=False)"}')
    assert html_report.table_b_caption(run_dir).endswith("S2/S3 cues: feature cues switched off (use_feature_cues=False).")
    metrics.write_text('{"cues": "long note", "iqa_cues_from": "PIQE (LIQE, QALIGN: no weights)"}')
    caption = html_report.table_b_caption(run_dir)
    assert caption.startswith(html_report.TABLE_B_NOTE)
    assert caption.endswith("S3's IQA cues from: PIQE (LIQE, QALIGN: no weights).") and "long note" not in caption
