"""One ladder figure for the workbench: the Thinking Model's stage ladder (notebooks 03, 05, 06) and
the Answer Model's rung ladder (notebooks 02, 06) are both drawn by `plot_ladder`.

Every panel follows the same rules, so a reader learns them once:

- the ladder's positions in a fixed order (the Thinking stages in `ontology.STAGES` order, the
  Answer rungs in the order notebook 02 built them), never sorted by name;
- the value axis starts at 0;
- each floor is a line across the panel: chance (0.5) for an accuracy, the shuffled-reference floor
  (`scoring.controls`) for a text metric, the frozen-features teaching row for the Answer ladder;
- 95% intervals as whiskers where the metric carries one (`scoring.stats.cluster_bootstrap_mean`);
- rows drawn apart (GRPO, which is not a rung of the prompt ladder) sit right of a gap, with an open
  diamond marker.

`plot_ladder` returns the figure with a one-sentence caption computed from the drawn numbers, and puts
the same facts on the figure (``fig.idiff_ladder``, `LADDER_META_ATTR`) so that tests can check the
order, the axis and the floor lines; `save_ladder` writes them next to the image as JSON.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError
from idiff_lib.core.ontology import STAGES
from idiff_lib.report.narrative import floor_position
from idiff_lib.report.style import CATEGORY_COLOURS, save_figure
from idiff_lib.scoring import controls

LADDER_META_ATTR = "idiff_ladder"  # the figure attribute holding `LadderPlot.meta`
CHANCE = 0.5  # a binary answer's chance accuracy
CHANCE_LABEL = "chance"
TEXT_FLOOR_LABEL = "shuffled-reference floor"
FROZEN_FLOOR_LABEL = "frozen-features floor"
# How a Thinking-ladder metric is titled; the order of `STAGE_METRICS` is the panels' default order.
STAGE_METRICS: dict[str, str] = {"accuracy": "answer accuracy", "rouge_l": "ROUGE-L F", "bleu4": "BLEU-4 (0-1)",
                                 "aspect_f1": "aspect F1", "consistency": "answer-rationale consistency",
                                 "verdict_accuracy": "verdict accuracy (truth)"}
_APART_GAP = 0.9  # extra distance between the ladder and the rows drawn apart
_FLOOR_STYLES = ({"color": "0.25", "ls": "--", "lw": 1.3}, {"color": "0.55", "ls": ":", "lw": 1.2})


@dataclasses.dataclass(frozen=True)
class Panel:
    """One panel of a ladder figure.

    Attributes:
        title: the metric, as the panel and the caption name it.
        points: one row per drawn point: ``x`` (a position of `order`, or any label for a row drawn
            apart), ``series`` (a line), ``value``, and ``low`` / ``high`` (NaN without an interval).
        order: the ladder's positions, first to last.
        floors: (value, label) lines; the caption compares the rows with the first.
        apart: series drawn apart, right of the ladder (GRPO).
        note: a short remark under the panel title (e.g. which stage's accuracy is copied).
        joined: join a series' points with a line (a ladder of stages); off for rungs that are
            separate models of different categories.
    """

    title: str
    points: pd.DataFrame
    order: tuple[str, ...]
    floors: tuple[tuple[float, str], ...] = ()
    apart: tuple[str, ...] = ()
    note: str = ""
    joined: bool = True


@dataclasses.dataclass
class LadderPlot:
    """A drawn ladder: the figure, its one-sentence caption and the facts tests check (`meta`)."""

    figure: plt.Figure
    caption: str
    meta: dict[str, Any]


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def plot_ladder(panels: Sequence[Panel], title: str = "", orient: str = "v") -> LadderPlot:
    """Draw ladder panels side by side (or stacked for ``orient="h"``) by the rules of the module doc.

    Args:
        panels: one per metric (`stage_ladder_panels`, `answer_ladder_panels`).
        title: the figure's title.
        orient: ``"v"``: positions along x, values up; ``"h"``: positions down the y axis (first on top),
            values along x, for long rung names.

    Raises:
        DataError: no panels, or a point whose ``x`` is neither in the panel's order nor drawn apart.
    """
    if not panels:
        raise DataError(None, "no ladder panels to draw", "pass at least one metric that the ladder table holds")
    if orient not in ("v", "h"):
        raise ValueError(f"orient must be 'v' or 'h', got {orient!r}")
    n = len(panels)
    longest = max(len(p.order) + len(_apart_positions(p)) for p in panels)
    if orient == "v":
        fig, axes = plt.subplots(1, n, figsize=(max(3.4, 0.55 * longest + 1.6) * n, 3.9), squeeze=False)
    else:
        fig, axes = plt.subplots(n, 1, figsize=(7.5, (0.42 * longest + 1.3) * n), squeeze=False)
    panel_meta = [_draw_panel(ax, panel, orient, first=k == 0) for k, (ax, panel) in enumerate(zip(axes.ravel(), panels))]
    caption = ladder_caption(panels)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    meta = {"title": title, "orient": orient, "caption": caption, "panels": panel_meta}
    setattr(fig, LADDER_META_ATTR, meta)
    return LadderPlot(fig, caption, meta)


def _apart_positions(panel: Panel) -> list[tuple[str, str]]:
    """(series, x) of the rows drawn apart, in their order of appearance."""
    pts = panel.points[panel.points["series"].isin(panel.apart)]
    return list(dict.fromkeys(zip(pts["series"], pts["x"])))


def _draw_panel(ax: plt.Axes, panel: Panel, orient: str, first: bool) -> dict[str, Any]:
    pts = panel.points
    main = pts[~pts["series"].isin(panel.apart)]
    unknown = sorted(set(main["x"]) - set(panel.order))
    if unknown:
        raise DataError(None, f"ladder panel {panel.title!r}: positions {unknown} are not in its order {list(panel.order)}",
                        "name every position in `order`, or draw its series apart")
    pos = {x: float(i) for i, x in enumerate(panel.order)}
    apart = _apart_positions(panel)
    start = len(panel.order) - 1 + _APART_GAP + 1
    apart_pos = {key: start + j for j, key in enumerate(apart)}
    series = list(dict.fromkeys(main["series"]))
    width = 0.36 if len(series) > 1 else 0.0
    whiskers = False
    top = 0.0
    for k, name in enumerate(series):
        part = main[main["series"] == name].copy()
        part["_p"] = part["x"].map(pos)
        part = part.sort_values("_p")
        shift = (k / max(1, len(series) - 1) - 0.5) * width if len(series) > 1 else 0.0
        whiskers |= _draw_series(ax, part["_p"].to_numpy() + shift, part, orient, name, "o", panel.joined,
                                 CATEGORY_COLOURS.get(name))
        top = max(top, np.nanmax(part[["value", "high"]].to_numpy(float), initial=0.0))
    for j, (name, x) in enumerate(apart):
        part = pts[(pts["series"] == name) & (pts["x"] == x)]
        whiskers |= _draw_series(ax, np.array([apart_pos[(name, x)]]), part, orient, name, "D", False, None)
        top = max(top, np.nanmax(part[["value", "high"]].to_numpy(float), initial=0.0))
    drawn_floors = []
    for (value, label), style in zip(panel.floors, _FLOOR_STYLES):
        if value is None or not math.isfinite(float(value)):
            continue
        line = (ax.axhline if orient == "v" else ax.axvline)(float(value), label=label, **style)
        line.set_gid("floor")
        drawn_floors.append({"value": float(value), "label": label})
        top = max(top, float(value))
    ticks = list(panel.order) + [textwrap.fill(f"{name} ({x})", 12) for name, x in apart]
    where = list(pos.values()) + list(apart_pos.values())
    upper = min(1.05, top * 1.25 + 0.02) if top <= 1.0 else top * 1.1
    if orient == "v":
        long = max((len(t) for t in panel.order), default=0) > 6  # rung names, not stage names
        ax.set_xticks(where, ticks, rotation=30 if long else 0, ha="right" if long else "center")
        for label in ax.get_xticklabels()[len(panel.order):]:
            label.set_fontsize(7)
        ax.set_ylim(0.0, upper)
        ax.set_ylabel(panel.title)
        if apart:
            ax.axvline(len(panel.order) - 1 + (_APART_GAP + 1) / 2, color="0.8", lw=0.8)
        value_lim = ax.get_ylim()
    else:
        ax.set_yticks(where, ticks)
        ax.set_ylim(max(where, default=0) + 0.6, -0.6)  # the first position on top
        ax.set_xlim(0.0, upper)
        ax.set_xlabel(panel.title)
        ax.set_ylabel("ladder rung")
        value_lim = ax.get_xlim()
    ax.set_title(panel.title + (f"\n{panel.note}" if panel.note else ""), fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    floor_labels = {f["label"] for f in drawn_floors}
    keep = [(h, l) for h, l in zip(handles, labels) if first or l in floor_labels]
    if keep:
        ax.legend(*zip(*keep), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0) if orient == "h" else None,
                  frameon=False)
    return {"title": panel.title, "x_order": list(panel.order), "apart": [f"{s} ({x})" for s, x in apart],
            "value_axis": [float(v) for v in value_lim], "floors": drawn_floors, "intervals": bool(whiskers)}


def _draw_series(ax: plt.Axes, where: np.ndarray, part: pd.DataFrame, orient: str, name: str, marker: str,
                 joined: bool, colour: Any) -> bool:
    """One series' points (joined by a line on the ladder) with whiskers where it has intervals."""
    value = part["value"].to_numpy(float)
    low, high = part["low"].to_numpy(float), part["high"].to_numpy(float)
    has_ci = ~(np.isnan(low) | np.isnan(high))
    # clipped at 0: an interval that does not hold its value (a rounded table) still draws
    err = np.where(has_ci, np.clip(np.vstack([value - low, high - value]), 0.0, None), 0.0)
    style = dict(marker=marker, ms=6 if marker == "o" else 7, ls="-" if joined else "none", lw=1.4, label=name,
                 capsize=3 if has_ci.any() else 0, elinewidth=1.0, color=colour)
    if marker == "D":
        style.update(mfc="white", mew=1.6)
    if orient == "v":
        ax.errorbar(where, value, yerr=err if has_ci.any() else None, **style)
    else:
        ax.errorbar(value, where, xerr=err if has_ci.any() else None, **style)
    return bool(has_ci.any())


def ladder_caption(panels: Sequence[Panel]) -> str:
    """One sentence: per panel, how many rows sit above, below or across its first floor (by the whole
    95% interval where there is one), and which rows are drawn apart."""
    clauses = []
    for panel in panels:
        if not panel.floors or panel.points.empty:
            clauses.append(f"{panel.title}: no floor to compare with")
            continue
        floor, label = panel.floors[0]
        counts = {"above": 0, "below": 0, "within": 0}
        for _, r in panel.points.iterrows():
            counts[floor_position(_num(r["value"]), _num(r["low"]), _num(r["high"]), floor)] += 1
        total = sum(counts.values())
        has_ci = panel.points[["low", "high"]].notna().all(axis=1).any()
        article = "" if label == CHANCE_LABEL else "the "
        clause = f"{panel.title}: {counts['above']} of {total} rows above {article}{label} ({floor:.2f})"
        if has_ci:
            clause += f", {counts['below']} below and {counts['within']} with the floor inside their 95% interval"
        else:
            clause += f", {counts['below'] + counts['within']} not above (no interval)"
        clauses.append(clause)
    apart = sorted({s for p in panels for s in p.apart if s in set(p.points["series"])})
    tail = f"; {', '.join(apart)} drawn apart on the right (not a rung of the ladder)" if apart else ""
    return "; ".join(clauses) + tail + "."


# ---------------------------------------------------------------------------------------------
# The two ladders as panels
# ---------------------------------------------------------------------------------------------
def stage_ladder_panels(ladder: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "rouge_l", "bleu4"),
                        apart: Sequence[str] = ()) -> list[Panel]:
    """The Thinking-model ladder (notebook 05's ``ladder_scores.csv``) as one panel per metric.

    Stages go in `ontology.STAGES` order; the row of `controls.FLOOR_STAGE` is drawn as the text
    metrics' floor and accuracy's floor is chance. ``<metric>_ci_low`` / ``_ci_high`` columns, where
    present, are the whiskers.

    Args:
        ladder: one row per (system, stage), plus the floor row.
        metrics: the panels, those absent from `ladder` skipped.
        apart: systems drawn apart (the GRPO runs, `narrative.grpo_systems`).

    Raises:
        DataError: a stage outside `ontology.STAGES` in a system not drawn apart, or no metric to draw.
    """
    is_floor = ladder["stage"] == controls.FLOOR_STAGE
    floor, rows = ladder[is_floor], ladder[~is_floor]
    bad = sorted(set(rows.loc[~rows["system"].isin(apart), "stage"]) - set(STAGES))
    if bad:
        raise DataError(None, f"ladder stages {bad} are not prompt stages ({', '.join(STAGES)})",
                        "name each row's stage as notebook 03 does, or pass its system in `apart`")
    order = tuple(s for s in STAGES if s in set(rows["stage"]))
    panels = []
    for metric in [m for m in metrics if m in ladder]:
        low, high = (rows[f"{metric}_ci_{end}"] if f"{metric}_ci_{end}" in rows else pd.Series(np.nan, index=rows.index)
                     for end in ("low", "high"))
        points = pd.DataFrame({"x": rows["stage"], "series": rows["system"],
                               "value": pd.to_numeric(rows[metric], errors="coerce"),
                               "low": pd.to_numeric(low, errors="coerce"), "high": pd.to_numeric(high, errors="coerce")})
        points = points.dropna(subset=["value"])
        if metric == "accuracy":
            floors = ((CHANCE, CHANCE_LABEL),)
            copied = [s for s in controls.ANSWER_IN_PROMPT_STAGES if s in order]
            note = f"{', '.join(copied)}: copied from the prompt" if copied else ""
        else:
            value = _num(floor[metric].iloc[0]) if len(floor) else math.nan
            floors = ((value, TEXT_FLOOR_LABEL),) if math.isfinite(value) else ()
            note = ""
        panels.append(Panel(STAGE_METRICS.get(metric, metric), points, order, floors,
                            tuple(s for s in apart if s in set(points["series"])), note))
    if not panels:
        raise DataError(None, f"the ladder table holds none of the metrics {list(metrics)}",
                        "pass metrics among its columns (e.g. accuracy, rouge_l, bleu4)")
    return panels


def stage_panel_problems(meta: dict[str, Any]) -> list[str]:
    """What is wrong with a drawn stage ladder (`plot_ladder(stage_ladder_panels(...)).meta`); empty when nothing.

    Each panel must show its stages in `ontology.STAGES` order (S0 -> S4), start its value axis at 0
    and draw its floor; the accuracy panel's floor is chance. The notebooks assert that this is empty.
    """
    problems = []
    for panel in meta.get("panels", []):
        title, order = panel.get("title", "?"), list(panel.get("x_order", []))
        if order != [s for s in STAGES if s in order]:
            problems.append(f"{title}: stages {order} are not in the order {', '.join(STAGES)}")
        if not panel.get("value_axis") or panel["value_axis"][0] != 0.0:
            problems.append(f"{title}: the value axis starts at {panel.get('value_axis')}, not 0")
        if not panel.get("floors"):
            problems.append(f"{title}: no floor drawn")
        elif title == STAGE_METRICS["accuracy"] and panel["floors"][0]["value"] != CHANCE:
            problems.append(f"{title}: the floor is {panel['floors'][0]['value']}, not chance ({CHANCE})")
    return problems


def answer_ladder_panels(ladder: pd.DataFrame, floor_kind: str = "teaching") -> list[Panel]:
    """The Answer-model ladder (long form: rung, kind, category, accuracy, ci_low, ci_high) as one panel.

    Rungs keep their order; each category is a series. The rows of kind `floor_kind` (the
    frozen-features teaching row) are not positions but the panel's first floor, drawn as a line
    beside chance; a rung whose kind is neither ``rung`` nor the floor is labelled with its kind.
    """
    is_floor = ladder["kind"] == floor_kind if "kind" in ladder else pd.Series(False, index=ladder.index)
    floor_rows = ladder[is_floor & (ladder["category"] == "overall")]
    rows = ladder[~is_floor]
    kinds = rows.drop_duplicates("rung").set_index("rung")["kind"] if "kind" in rows else {}
    label = {r: (f"{r} [{kinds[r]}]" if r in kinds and kinds[r] != "rung" else r) for r in dict.fromkeys(rows["rung"])}
    points = pd.DataFrame({"x": rows["rung"].map(label), "series": rows["category"],
                           "value": pd.to_numeric(rows["accuracy"], errors="coerce"),
                           "low": pd.to_numeric(rows["ci_low"], errors="coerce"),
                           "high": pd.to_numeric(rows["ci_high"], errors="coerce")}).dropna(subset=["value"])
    floors = [(CHANCE, CHANCE_LABEL)]
    if len(floor_rows) and math.isfinite(_num(floor_rows["accuracy"].iloc[0])):
        floors.insert(0, (_num(floor_rows["accuracy"].iloc[0]), FROZEN_FLOOR_LABEL))
    return [Panel("test accuracy", points, tuple(label.values()), tuple(floors), joined=False)]


def answer_ladder_long(wide: pd.DataFrame, groups: Sequence[str] = ("person", "scene", "overall")) -> pd.DataFrame:
    """Notebook 02's wide ladder (``row``, ``kind``, ``<group>_acc/_lo/_hi``) in the long form of
    `answer_ladder_panels`."""
    rows = [{"rung": r["row"], "kind": r.get("kind", "rung"), "category": g, "accuracy": r[f"{g}_acc"],
             "ci_low": r.get(f"{g}_lo"), "ci_high": r.get(f"{g}_hi")}
            for _, r in wide.iterrows() for g in groups if f"{g}_acc" in wide]
    return pd.DataFrame(rows, columns=["rung", "kind", "category", "accuracy", "ci_low", "ci_high"])


def save_ladder(plot: LadderPlot, name: str, fig_dir: str | Path | None = None) -> list[Path]:
    """`style.save_figure` the ladder, and write its `meta` (caption included) as ``<name>.json`` beside it."""
    written = save_figure(plot.figure, name, fig_dir)
    written.append(storage.write_json(written[0].with_suffix(".json"), plot.meta))
    return written
