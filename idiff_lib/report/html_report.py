"""The run report: the paper's two ablation tables beside ours, figures, and an HTML report.

Everything here reads only a run folder's recorded outputs (``RUN_DIR/<step>/...``), so a report
can be rebuilt at any time without rerunning a model.

The paper's numbers are those reported for iDiff on the real NTIRE 2026 RAIM Track 1 validation
data; ours are measured on the embedded benchmark (``data/demo``), which is synthetic in its
degradations and templated in its rationales. The two are shown side by side, never mixed.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd
import yaml
from nbconvert import HTMLExporter

from idiff_lib.answer.experiments.ladder import PLUS_FEATURE_ROW
from idiff_lib.core import layout, paths, storage
from idiff_lib.core.ontology import CATEGORIES
from idiff_lib.report import ladder_plot, narrative
from idiff_lib.scoring import controls
from idiff_lib.scoring.stats import CLUSTER_CI_CAPTION

# iDiff's reported validation accuracy (overall) for each rung of the Answer-model ladder.
PAPER_ANSWER_LADDER = {
    "single model, merged input": 0.578,
    "+ L/R split views": 0.696,
    "+ person/scene specialists": 0.775,
    "+ backbone ensemble": 0.912,
}
# iDiff's reported BLEU-4 / ROUGE-L for the Thinking-model stages (every value the paper gives).
PAPER_THINKING_LADDER = {
    "S0": {"bleu4": 0.022, "rouge_l": 0.220},
    "S1": {"bleu4": 0.086, "rouge_l": 0.283},
    "S2": {"bleu4": 0.096, "rouge_l": 0.299},
    "S3": {"bleu4": 0.103, "rouge_l": 0.304},
    "S4": {"bleu4": 0.116, "rouge_l": 0.308},
}
STAGE_NAMES = {
    "S0": "baseline prompt",
    "S1": "+ expert templates",
    "S2": "+ CV feature cues",
    "S3": "+ IQA cues & aspect evidence",
    "S4": "+ answer-aware",
}


def _fmt_ci(acc: float, lo: float | None, hi: float | None) -> str:
    if acc is None or (isinstance(acc, float) and math.isnan(acc)):
        return "–"
    if lo is None or hi is None or any(isinstance(v, float) and math.isnan(v) for v in (lo, hi)):
        return f"{acc:.3f}"
    return f"{acc:.3f} [{lo:.3f}, {hi:.3f}]"


# Notebook 02 writes its ladder rows under these names (idiff_lib.ladder.ROWS).
RUNG_NAMES = {
    "merged": "single model, merged input",
    "split": "+ L/R split views",
    "local": "+ local detail views",  # the cache-first ladder's own rung (global and local A - B)
    "specialists": "+ person/scene specialists",
    "ensemble": "+ backbone ensemble",
    "evidence": "+ defect evidence",  # the cache-first ladder's own rung (per-kind defect heads)
}
# The groups of Table A: each content category, then all pairs.
TABLE_GROUPS = (*CATEGORIES, "overall")


def saved_ensemble_cell(table_a: pd.DataFrame, column: str = "ours overall") -> str:
    """Table A's cell of the ensemble notebook 02 saved (its ``test_accuracy``): the row "+ feature
    member" when the run has one (`answer.ladder.PLUS_FEATURE_ROW`), else the networks' ensemble rung."""
    rung = PLUS_FEATURE_ROW if (table_a["rung"] == PLUS_FEATURE_ROW).any() else RUNG_NAMES["ensemble"]
    return str(table_a.loc[table_a["rung"] == rung, column].iloc[0])


def answer_ladder(run_dir: str | Path) -> pd.DataFrame:
    """Notebook 02's ladder in long form: rung, kind, category, accuracy, ci_low, ci_high, n.

    Reads ``02_train_answer_model/ladder.csv`` as notebook 02 writes it (one row per Table A row,
    with ``<category>_acc/_lo/_hi/_n`` columns and its ``kind``: the paper's "rung", "teaching",
    "ablation" or "ours"). The paper's rungs get the paper's names; a rung trained again from
    scratch keeps its suffix, e.g. "+ L/R split views (no pretraining)".
    """
    wide = pd.read_csv(layout.step_dir(run_dir, layout.ANSWER_STEP) / layout.ANSWER_LADDER_FILE)
    rows = []
    for _, r in wide.iterrows():
        base, _, suffix = str(r["row"]).partition(" (")
        rung = RUNG_NAMES.get(base, base) + (f" ({suffix}" if suffix else "")
        kind = r["kind"] if "kind" in wide else "rung"
        for cat in TABLE_GROUPS:
            if f"{cat}_acc" in wide:
                rows.append({"rung": rung, "kind": kind, "category": cat, "accuracy": r[f"{cat}_acc"],
                             "ci_low": r[f"{cat}_lo"], "ci_high": r[f"{cat}_hi"], "n": r.get(f"{cat}_n")})
    return pd.DataFrame(rows, columns=["rung", "kind", "category", "accuracy", "ci_low", "ci_high", "n"])


def answer_table(run_dir: str | Path) -> pd.DataFrame:
    """Table A: the Answer-model ladder, ours (person/scene/overall with 95% CIs) beside the paper's."""
    ladder = answer_ladder(run_dir)
    rows = []
    for rung in dict.fromkeys(ladder["rung"]):
        row = {"rung": rung, "kind": ladder.loc[ladder["rung"] == rung, "kind"].iloc[0]}
        for cat in TABLE_GROUPS:
            hit = ladder[(ladder["rung"] == rung) & (ladder["category"] == cat)]
            row[f"ours {cat}"] = (_fmt_ci(*hit[["accuracy", "ci_low", "ci_high"]].iloc[0].tolist())
                                  if len(hit) else "–")
        paper = PAPER_ANSWER_LADDER.get(rung)
        row["paper overall (RAIM val)"] = f"{paper:.3f}" if paper is not None else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def thinking_scores(run_dir: str | Path) -> pd.DataFrame:
    """Notebook 05's ladder scores (BLEU-4 on the workbench's 0–1 scale, as the paper gives it)."""
    return pd.read_csv(layout.step_dir(run_dir, layout.SCORING_STEP) / layout.SCORING_LADDER_FILE)


def thinking_table(run_dir: str | Path) -> pd.DataFrame:
    """Table B: the Thinking-model ladder S0..S4 per system, beside the paper's numbers.

    Reads ``05_score_rationales/ladder_scores.csv`` (system, stage, bleu4, rouge_l, aspect_f1,
    consistency, accuracy with its interval, wrong_side_rate, and, when the data has ground truth,
    verdict_accuracy and meta_coverage); see `thinking_scores` for the BLEU
    scale. The shuffled-reference floor (`controls.FLOOR_STAGE`) is the last row; accuracy copied
    from the prompt carries a † (`TABLE_B_NOTE`).
    """
    scores = thinking_scores(run_dir)
    floor = scores["stage"] == controls.FLOOR_STAGE
    scores = pd.concat([scores[~floor].sort_values(["system", "stage"]), scores[floor]])
    rows = []
    for _, r in scores.iterrows():
        paper = PAPER_THINKING_LADDER.get(r["stage"], {})
        copied = "†" if r["stage"] in controls.ANSWER_IN_PROMPT_STAGES else ""
        rows.append({
            "system": r["system"], "stage": f"{r['stage']} {STAGE_NAMES.get(r['stage'], '')}".strip(),
            "BLEU-4": f"{r['bleu4']:.3f}", "ROUGE-L": f"{r['rouge_l']:.3f}",
            "aspect F1": f"{r['aspect_f1']:.3f}", "consistency": f"{r['consistency']:.3f}",
            "accuracy [95% CI]": _with_ci(r, "accuracy") + copied,
            "wrong side": _fmt(r.get("wrong_side_rate")),
            "verdict acc. (truth)": _fmt(r.get("verdict_accuracy")), "truth coverage": _fmt(r.get("meta_coverage")),
            "paper BLEU-4 / ROUGE-L (RAIM)": " / ".join(
                f"{paper[k]:.3f}" if paper.get(k) is not None else "–" for k in ("bleu4", "rouge_l")),
        })
    return pd.DataFrame(rows)


# Table B's caption note: the floor, the copied accuracy and the intervals.
TABLE_B_NOTE = (f"Floor: each reference scored against another pair's reference. † accuracy copied from the prompt "
                f"(S4 shows the Answer Model's verdict). Wrong side: share of rationales naming Image A as right or "
                f"Image B as left. Verdict acc. (truth): share of the lines on an aspect the benchmark's ground truth holds "
                f"whose verdict matches it; truth coverage: share of the ground truth's comparisons discussed "
                f"(– where the data has no ground truth). {CLUSTER_CI_CAPTION}.")


def thinking_cue_sentence(run_dir: str | Path) -> str:
    """Which feature cues the S2/S3 prompts had, from notebook 03's ``metrics.json``; "" when not recorded.

    ``iqa_cues_from`` (the short `side_inputs.iqa_sources_text` phrase, e.g. "PIQE (LIQE, QALIGN: no
    weights)") comes first; a run recorded before that key gives its whole ``cues`` note.
    """
    path = layout.step_dir(run_dir, layout.THINKING_STEP) / layout.METRICS_FILE
    if not path.exists():
        return ""
    metrics = json.loads(path.read_text(encoding="utf-8"))
    if metrics.get("iqa_cues_from"):
        return f"S2 cues: hand-crafted CV features; S3's IQA cues from: {metrics['iqa_cues_from']}."
    return f"S2/S3 cues: {metrics['cues']}." if metrics.get("cues") else ""


def table_b_caption(run_dir: str | Path) -> str:
    """Table B's caption note (`TABLE_B_NOTE`) plus the run's `thinking_cue_sentence`."""
    return " ".join(part for part in (TABLE_B_NOTE, thinking_cue_sentence(run_dir)) if part)


def _fmt(value: object) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.2f}"


def _with_ci(row: pd.Series, name: str) -> str:
    low, high = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    if _fmt(low) == "–" or _fmt(high) == "–":
        return _fmt(row.get(name))
    return f"{_fmt(row.get(name))} [{_fmt(low)}, {_fmt(high)}]"


def write_table(df: pd.DataFrame, name: str, out_dir: str | Path, caption: str) -> dict[str, Path]:
    """Write a table as Markdown and LaTeX (atomically); returns the paths."""
    out_dir = Path(out_dir)
    md = storage.write_text(out_dir / f"{name}.md", f"**{caption}**\n\n" + df.to_markdown(index=False) + "\n")
    tex = storage.write_text(out_dir / f"{name}.tex",
                             df.to_latex(index=False, caption=caption, label=f"tab:{name}", escape=True))
    return {"md": md, "tex": tex}


def thinking_metrics(run_dir: str | Path) -> dict:
    """Notebook 03's ``metrics.json`` of the run ({} when it has none)."""
    path = layout.step_dir(run_dir, layout.THINKING_STEP) / layout.METRICS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def thinking_params(run_dir: str | Path) -> dict:
    """Notebook 03's resolved ``params.yaml`` of the run ({} when it has none)."""
    path = layout.step_dir(run_dir, layout.THINKING_STEP) / layout.PARAMS_FILE
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}


def answer_ladder_plot(run_dir: str | Path) -> ladder_plot.LadderPlot:
    """Table A as the one ladder figure: accuracy per rung and category with 95% intervals, rungs top
    to bottom, the frozen-features floor and chance as lines, and its computed caption."""
    return ladder_plot.plot_ladder(ladder_plot.answer_ladder_panels(answer_ladder(run_dir)),
                                   title=f"Answer model ladder ({CLUSTER_CI_CAPTION})", orient="h")


def thinking_ladder_plot(run_dir: str | Path,
                         metrics: tuple[str, ...] = ("accuracy", "rouge_l", "bleu4")) -> ladder_plot.LadderPlot:
    """Table B as the one ladder figure: stages S0 -> S4 per system, the floors as lines, intervals
    where notebook 05 recorded them, the GRPO runs (notebook 03's metrics) drawn apart."""
    scores = thinking_scores(run_dir)
    apart = narrative.grpo_systems(thinking_metrics(run_dir))
    return ladder_plot.plot_ladder(ladder_plot.stage_ladder_panels(scores, metrics, apart),
                                   title="Thinking model ladder (test split)")


def build_html_report(run_dir: str | Path, out_dir: str | Path | None = None,
                      tables: dict[str, pd.DataFrame] | None = None, figures: list[Path] | None = None) -> Path:
    """Convert each executed notebook to HTML and write an ``index.html`` that links them.

    The index shows the run's steps (status, time), the tables and the figures.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    rows = []
    for step_dir in sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name[:2].isdigit()):
        executed = step_dir / layout.EXECUTED_NOTEBOOK
        record = step_dir / layout.STEP_MARKER
        info = json.loads(record.read_text()) if record.exists() else {}
        link = ""
        if executed.exists():
            body, _ = exporter.from_filename(str(executed))
            storage.write_text(out_dir / f"{step_dir.name}.html", body)
            link = f'<a href="{step_dir.name}.html">{html.escape(step_dir.name)}</a>'
        if out_dir.resolve().is_relative_to(step_dir.resolve()):
            status = "this report"  # the step building this page: it finishes after the page is written
        else:
            status = "done" if info else "not finished"
        seconds = f"{info['seconds']:.0f} s" if info.get("seconds") is not None else "–"
        rows.append(f"<tr><td>{link or html.escape(step_dir.name)}</td><td>{status}</td><td>{seconds}</td></tr>")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>iDiff Workbench report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;font-size:14px}"
        "th{background:#eee}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}</style></head><body>",
        f"<h1>iDiff Workbench report</h1><p>Run folder: <code>{html.escape(str(run_dir))}</code></p>",
        "<h2>Steps</h2><table id='steps'><tr><th>step</th><th>status</th><th>time</th></tr>",
        *rows, "</table>",
    ]
    for title, df in (tables or {}).items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(df.to_html(index=False, classes="result-table", border=0))
    for fig in figures or []:
        target = out_dir / fig.name
        if fig.resolve() != target.resolve():
            target.write_bytes(fig.read_bytes())
        parts.append(f"<figure><img src='{html.escape(fig.name)}' alt='{html.escape(fig.stem)}'>"
                     f"<figcaption>{html.escape(fig.stem)}</figcaption></figure>")
    parts.append("</body></html>")
    return storage.write_text(out_dir / "index.html", "\n".join(parts))


RESULTS_START = "<!-- results:start (written by notebook 06; edit outside these markers) -->"
RESULTS_END = "<!-- results:end -->"


def update_readme_results(readme: str | Path, table_a: pd.DataFrame, table_b: pd.DataFrame,
                          figures: list[Path], run_dir: str | Path, data_dir: str | Path) -> str:
    """Rewrite the README's Results section (between the markers) with this run's tables and figures.

    Only a run on the embedded benchmark may do so: the README reports the demo. Figures outside
    the project are not linked. Returns what was done, for the notebook to print.
    """
    readme = Path(readme)
    if Path(data_dir).resolve() != paths.DEMO_DIR.resolve():
        return f"README not updated: this run's data ({data_dir}) is not the embedded benchmark"
    text = readme.read_text(encoding="utf-8")
    if RESULTS_START not in text or RESULTS_END not in text:
        raise ValueError(f"{readme}: the Results markers are missing. fix: put {RESULTS_START!r} and "
                         f"{RESULTS_END!r} around the Results section")
    links = []
    for fig in figures:
        try:
            rel = Path(fig).resolve().relative_to(paths.PROJ_ROOT)
        except ValueError:
            continue
        links.append(f"![{Path(fig).stem}]({rel.as_posix()})")
    steps = []
    for record in sorted(Path(run_dir).glob(f"*/{layout.STEP_MARKER}")):
        info = json.loads(record.read_text())
        steps.append(f"{info['step']} {info['seconds'] / 60:.1f} min")
    body = "\n".join([
        RESULTS_START,
        f"Latest demo run: profile `{_profile_of(run_dir)}`, finished {_finished_of(run_dir)}"
        + (f"; step times: {', '.join(steps)}." if steps else "."),
        "",
        f"**Table A: Answer-model ladder** (ours: `data/demo` test split, {CLUSTER_CI_CAPTION}; paper: RAIM validation)",
        "",
        table_a.to_markdown(index=False),
        "",
        "**Table B: Thinking-model ladder** (ours: `data/demo` test split; paper: RAIM; BLEU-4 on a 0–1 scale). "
        + table_b_caption(run_dir),
        "",
        table_b.to_markdown(index=False),
        "",
        *[f"{link}\n" for link in links],
        RESULTS_END,
    ])
    head, rest = text.split(RESULTS_START, 1)
    tail = rest.split(RESULTS_END, 1)[1]
    storage.write_text(readme, head + body + tail)
    return f"updated the Results section of {readme}"


def _profile_of(run_dir: str | Path) -> str:
    for record in Path(run_dir).glob(f"*/{layout.STEP_MARKER}"):
        return json.loads(record.read_text()).get("profile", "?")
    return "?"


def _finished_of(run_dir: str | Path) -> str:
    times = [json.loads(r.read_text()).get("finished", "") for r in Path(run_dir).glob(f"*/{layout.STEP_MARKER}")]
    return max(times) if times else "?"


READING_START = "<!-- reading:start (written by notebook 06 from the run's records; edit outside these markers) -->"
READING_END = "<!-- reading:end -->"


def update_readme_reading(readme: str | Path, paragraph: str, data_dir: str | Path) -> str:
    """Write the README's "How to read them" paragraph (`narrative.reading_paragraph`) between
    `READING_START` and `READING_END`; only a run on the embedded benchmark does, as for the Results.
    Returns what was done, for the notebook to print."""
    if Path(data_dir).resolve() != paths.DEMO_DIR.resolve():
        return f"README reading paragraph not updated: this run's data ({data_dir}) is not the embedded benchmark"
    narrative.write_between_markers(readme, READING_START, READING_END, paragraph)
    return f"updated the reading paragraph of {readme}"
