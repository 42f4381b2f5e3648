"""The public RAIM-PIQA rationales, read in place, and the rationale vocabulary mined from them.

`idiff_lib.core.vocabulary` holds the vocabulary itself (`Vocabulary`, the committed counts and the
writer); this module reads a RAIM-PIQA folder's ``train_sft_1536.jsonl`` with the pair reader
(`idiff_lib.data.pairs.read_pairs`) and mines it (`mine_raim_folder`), or rewrites the committed
counts from it (`remine_raim_vocabulary`, ``idiff think mine-vocabulary``). No sentence is stored.
"""

from __future__ import annotations

from pathlib import Path

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError
from idiff_lib.core.vocabulary import (RAIM_ORIGIN, RAIM_SFT_FILE, RAIM_VOCABULARY_FILE, Vocabulary, mine_vocabulary,
                                       vocabulary_counts)
from idiff_lib.data.pairs import read_pairs


def raim_texts(folder: str | Path) -> list[tuple[str | None, str]]:
    """(category, rationale) of the public RAIM-PIQA SFT file in `folder` (read in place).

    Raises:
        DataError: the folder has no ``train_sft_1536.jsonl``.
    """
    path = Path(folder).expanduser() / RAIM_SFT_FILE
    if not path.exists():
        raise DataError(path, "the public RAIM-PIQA rationales are not here",
                        "point raim_dir to the folder holding train_sft_1536.jsonl (idiff data fetch-raim downloads "
                        "it), or leave it empty to use the committed counts")
    return [(p.category, p.thinking) for p in read_pairs(path, skip_bad=True) if p.thinking]


def raim_lines(folder: str | Path) -> list[str]:
    """The rationale lines of the public RAIM-PIQA SFT file in `folder` (read in place)."""
    return [ln for _, text in raim_texts(folder) for ln in text.splitlines() if ln.strip()]


def mine_raim_folder(folder: str | Path) -> Vocabulary:
    """The vocabulary mined afresh from the public rationales in `folder`."""
    texts = raim_texts(folder)
    return mine_vocabulary(texts, f"{len(texts)} public RAIM-PIQA rationales")


def remine_raim_vocabulary(folder: str | Path, out: str | Path = RAIM_VOCABULARY_FILE) -> Path:
    """Maintainers: re-mine the committed counts from a RAIM-PIQA folder and rewrite `out`."""
    data = {"about": f"Counts mined by idiff_lib.core.vocabulary.mine_vocabulary from {RAIM_ORIGIN}. "
                     "Counts only: no sentence of the rationales is stored. Rewrite with "
                     "`idiff think mine-vocabulary --raim-dir FOLDER`.",
            **vocabulary_counts(mine_raim_folder(folder))}
    return storage.write_json(out, data)
