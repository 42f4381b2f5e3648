"""Every library name the README cites in backticks (`module.function`, `idiff_lib.pkg.module.NAME`)
exists: a function renamed or removed leaves no pointer to nothing (issue 28: `controls.floor_sentence`)."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import idiff_lib
from idiff_lib.core import paths

FILE_SUFFIXES = {"py", "json", "jsonl", "md", "yaml", "yml", "safetensors", "csv", "txt", "ipynb", "pt", "npz"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(idiff_lib.__path__, "idiff_lib."))


def cited_names(text: str) -> list[str]:
    """Dotted names in backticks, file names (``metrics.json``) left out."""
    names = set(re.findall(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)`", text))
    return sorted(n for n in names if n.rsplit(".", 1)[1] not in FILE_SUFFIXES)


def resolves(name: str) -> bool:
    """Whether `name` is a module of the package, or an attribute of one, written in full or from any
    trailing part of the module's path (``analysis.ensemble_weight_sentence``, ``model.heads``)."""
    parts = name.split(".")
    for module in MODULES:
        tail = module.split(".")
        for k in range(len(parts), 0, -1):
            if tail[-k:] == parts[:k] and _has_path(importlib.import_module(module), parts[k:]):
                return True
    return False


def _has_path(obj, attrs: list[str]) -> bool:
    for attr in attrs:
        if not hasattr(obj, attr):
            return False
        obj = getattr(obj, attr)
    return True


def test_the_resolver_finds_names_and_refuses_removed_ones():
    assert resolves("narrative.floor_claim") and resolves("idiff_lib.scoring.worked_pair.choose_worked_pair")
    assert resolves("model.heads") and resolves("answer.model.heads") and resolves("idiff_lib.thinking.train.grpo_run")
    assert not resolves("controls.floor_sentence") and not resolves("score_figures.plot_stage_ladder_scores")
    assert cited_names("`metrics.json` and `a.b`") == ["a.b"]


@pytest.mark.parametrize("doc", ["README.md"])
def test_every_name_a_document_cites_exists(doc):
    missing = [n for n in cited_names((paths.PROJ_ROOT / doc).read_text(encoding="utf-8")) if not resolves(n)]
    assert not missing, f"{doc} cites names the library does not have: {missing}"
