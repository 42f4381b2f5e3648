"""One figure style for the whole workbench, and atomic PNG/PDF saving.

The palette is seaborn's ``colorblind`` (Okabe–Ito-like), safe for the common colour-vision
deficiencies; fonts and sizes suit a two-column paper at 100% scale.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: notebooks under papermill and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from idiff_lib.core import paths  # noqa: E402
from idiff_lib.core import storage

PALETTE = "colorblind"
# Fixed colours for the recurring categories, so a reader learns them once.
CATEGORY_COLOURS = dict(zip(("person", "scene", "overall"), sns.color_palette(PALETTE, 3)))
SIDE_COLOURS = dict(zip(("A", "B"), sns.color_palette(PALETTE, 5)[3:5]))


def use_style() -> None:
    """Apply the workbench style (call once per notebook, before plotting)."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.2)
    plt.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 200,
        "savefig.bbox": "tight",
        "pdf.fonttype": 42,  # embed TrueType, so the PDF text stays editable and searchable
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


def save_figure(fig: plt.Figure, name: str, fig_dir: str | Path | None = None, pdf: bool = True) -> list[Path]:
    """Save `fig` as ``<fig_dir>/<name>.png`` (and ``.pdf``), each written atomically."""
    folder = Path(fig_dir) if fig_dir else paths.FIGURES_DIR
    written = []
    for ext in ("png", "pdf") if pdf else ("png",):
        target = folder / f"{name}.{ext}"
        with storage.atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext)
        written.append(target)
    return written
