"""One figure style for the whole workbench; figures saved (PNG + PDF, atomically) and shown.

The palette is seaborn's ``colorblind`` (Okabe–Ito-like), safe for the common colour-vision
deficiencies; fonts and sizes suit a two-column paper at 100% scale.

The backend: inside a Jupyter kernel (a person's or papermill's) matplotlib keeps the kernel's
inline backend, so every figure appears in the notebook where it is made. Elsewhere (the CLI,
scripts, pytest) the non-display Agg backend is chosen, unless a backend was asked for
(``MPLBACKEND`` or an earlier ``matplotlib.use``).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

from idiff_lib.core import paths, storage
from idiff_lib.core.progress import ipython_kernel


def _choose_backend() -> None:
    """Agg outside Jupyter when no backend was requested; nothing otherwise (see the module doc)."""
    chosen = getattr(matplotlib.rcParams, "_get_backend_or_none", lambda: None)()  # None: not chosen yet
    requested = os.environ.get("MPLBACKEND") or chosen
    if ipython_kernel() is None and not requested:
        matplotlib.use("Agg")


_choose_backend()
import io

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is settled)
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from IPython.display import Image, display

PALETTE = "colorblind"
# Fixed colours for the recurring categories, so a reader learns them once.
CATEGORY_COLOURS = dict(zip(("person", "scene", "overall"), sns.color_palette(PALETTE, 3)))
SIDE_COLOURS = dict(zip(("A", "B"), sns.color_palette(PALETTE, 5)[3:5]))


def use_style() -> None:
    """Apply the workbench style (call once per notebook, before plotting): figures, and tables shown
    with 3 decimals and wide enough that a ladder table is not wrapped into two blocks."""
    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 160)
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


# No date in the file: the same figure gives the same bytes in every clone and on every rerun.
FILE_METADATA = {"png": {}, "pdf": {"CreationDate": None}}


def save_figure(fig: plt.Figure, name: str, fig_dir: str | Path | None = None, pdf: bool = True) -> list[Path]:
    """Save `fig` as ``<fig_dir>/<name>.png`` (and ``.pdf``), each written atomically; show it in Jupyter.

    In a Jupyter kernel the figure is displayed once, here, and then closed, so the inline backend
    does not draw it a second time at the end of the cell. Outside Jupyter it is only closed
    (figures are not kept open in a long CLI run).
    """
    folder = Path(fig_dir) if fig_dir else paths.FIGURES_DIR
    written = []
    for ext in ("png", "pdf") if pdf else ("png",):
        target = folder / f"{name}.{ext}"
        with storage.atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, metadata=FILE_METADATA[ext])
        written.append(target)
    show_figure(fig)
    return written


def show_figure(fig: plt.Figure) -> None:
    """Display `fig` in the running Jupyter kernel (as ``image/png``), then close it; outside Jupyter, close it."""
    if ipython_kernel() is not None:
        if "inline" in matplotlib.get_backend():
            display(fig)
        else:  # a kernel told to use another backend: send the pixels, which every front end shows

            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=plt.rcParams["figure.dpi"])
            display(Image(data=buffer.getvalue(), format="png"))
    plt.close(fig)
