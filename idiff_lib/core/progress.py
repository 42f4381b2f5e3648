"""One progress-bar factory for the whole workbench: quiet in batch runs, a widget in Jupyter.

Where the code runs decides the kind of bar:

- a Jupyter kernel driven by a person (JupyterLab, Notebook, VS Code): the ipywidgets bar of
  ``tqdm.notebook``, one line that updates in place;
- a kernel driven by a batch client (papermill, nbclient, nbval): no bar at all. These clients
  never allow stdin (they send ``allow_stdin=False`` with every cell), which is how they are told
  apart; a text bar there would store every redraw in the executed notebook (thousands of lines);
- anywhere else (the CLI, a script, pytest): tqdm's text bar on stderr.

``IDIFF_PROGRESS`` (``off`` | ``text`` | ``widget``) overrides the choice.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable

import IPython
from huggingface_hub.utils import disable_progress_bars
from tqdm.notebook import tqdm as widget_tqdm  # alias: the notebook widget's tqdm, beside the console one
from tqdm.std import tqdm

from idiff_lib.core.errors import ParameterError

PROGRESS_ENV = "IDIFF_PROGRESS"
PROGRESS_MODES = ("off", "text", "widget")


def ipython_kernel() -> Any | None:
    """The running IPython kernel object, or None outside a Jupyter kernel (terminal IPython included)."""
    shell = IPython.get_ipython()
    return getattr(shell, "kernel", None) if shell is not None else None


def batch_kernel() -> bool:
    """True inside a Jupyter kernel whose client does not allow stdin (papermill, nbclient, nbval)."""
    kernel = ipython_kernel()
    return kernel is not None and not getattr(kernel, "_allow_stdin", False)


def progress_mode() -> str:
    """``off``, ``text`` or ``widget``: the kind of bar `progress_bar` makes here (see the module doc)."""
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced:
        if forced not in PROGRESS_MODES:
            raise ParameterError(f"{PROGRESS_ENV}={forced!r} is not a progress mode. "
                                 f"fix: set it to one of {', '.join(PROGRESS_MODES)}, or unset it")
        return forced
    if ipython_kernel() is None:
        return "text"
    return "off" if batch_kernel() else "widget"


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """A tqdm bar of the kind `progress_mode` names; takes tqdm's arguments (``disable`` still wins).

    Returns a ``tqdm`` object in every mode (a disabled one when off), so callers may iterate it,
    ``update`` it, ``set_postfix`` it and ``close`` it alike.
    """
    mode = progress_mode()
    kwargs["disable"] = bool(kwargs.get("disable", False)) or mode == "off"
    if mode == "widget" and not kwargs["disable"]:
        try:
            return widget_tqdm(iterable, **kwargs)
        except ImportError:  # ipywidgets missing (it is a dependency; a bare kernel may lack it)
            pass
    return tqdm(iterable, **kwargs)


def quiet_library_bars() -> bool:
    """Turn Hugging Face's own bars off (transformers' "Loading weights" and "Writing model shards", the
    Hub's downloads) where `progress_mode` is "off": a batch kernel would keep each as a frozen "0%"
    widget line in the executed notebook. Elsewhere (a person's kernel, the CLI) they stay.

    Returns:
        Whether the bars were turned off.
    """
    if progress_mode() != "off":
        return False
    disable_progress_bars()  # transformers imported later reads this state once, at its import
    if "transformers" in sys.modules:  # imported already: its own switch too
        import transformers.utils.logging  # deferred on purpose: light commands (idiff data) never load transformers

        transformers.utils.logging.disable_progress_bar()
    return True
