"""Data sets on disk: split files of a data folder, and the public RAIM-PIQA annotations.

A data folder (``data/demo``, or a user's own) holds ``{train,val,test}_sft.jsonl`` (labelled,
SFT shape), optionally the GRPO twins and ``test_unlabeled.jsonl``. The public RAIM-PIQA
annotations (``narthchin/RAIM-PIQA``, ``data/1536/``) are fetched by `fetch_raim`; the
challenge images are not public (see the README, "Use your own data / the challenge data").
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

from idiff_lib.core import paths, storage
from idiff_lib.core.errors import DataError, OfflineError
from idiff_lib.data.pairs import PairList, read_pairs

SPLITS = ("train", "val", "test")
RAIM_REPO = "narthchin/RAIM-PIQA"
RAIM_COMMIT = "a5ff37ca8dfea4f0e21649960aae8d294602222d"  # the commit the shared copy was taken from
RAIM_FILES = ("train_sft_1536.jsonl", "train_grpo_1536.jsonl")
RAIM_RAW_URL = "https://raw.githubusercontent.com/{repo}/{ref}/data/1536/{name}"


def split_file(data_dir: str | Path, split: str, shape: str = "sft") -> Path:
    """``<data_dir>/<split>_<shape>.jsonl``, or a DataError that lists what the folder holds."""
    data_dir = Path(data_dir)
    name = "test_unlabeled.jsonl" if shape == "unlabeled" else f"{split}_{shape}.jsonl"
    path = data_dir / name
    if not path.exists():
        present = sorted(p.name for p in data_dir.glob("*.jsonl")) if data_dir.exists() else []
        raise DataError(path, "split file not found" + (f" (the folder holds {', '.join(present)})" if present else ""),
                        f"name the files {{train,val,test}}_{shape}.jsonl, or rebuild the demo set with "
                        "`idiff data build-demo`")
    return path


# Why the chain needs each split of a data folder (said when one is missing, before anything runs).
SPLIT_USES = {
    "train": "step 02 (02_train_answer_model) trains the Answer Model on it",
    "val": "step 02 (02_train_answer_model) picks each network's best epoch and fits the ensemble on it",
    "test": "step 02 scores the ensemble on it, and steps 03-06 report on it",
}


def check_data_folder(data_dir: str | Path) -> None:
    """Refuse a data folder that lacks one of ``{train,val,test}_sft.jsonl``, saying which steps need it, or holds a bad record.

    Every record of the three files is read (`read_pairs`, images found but not decoded), so the
    first bad one stops the chain with its file and line before any step runs.
    """
    data_dir = Path(data_dir)
    missing = [s for s in SPLITS if not (data_dir / f"{s}_sft.jsonl").exists()]
    if missing:
        uses = "; ".join(f"{s}_sft.jsonl: {SPLIT_USES[s]}" for s in missing)
        raise DataError(data_dir, f"no {', '.join(f'{s}_sft.jsonl' for s in missing)} in the data folder, so step 02 "
                        f"and the steps after it would stop ({uses})",
                        "add the missing split file(s) (e.g. move some labelled pairs of train_sft.jsonl to "
                        "val_sft.jsonl), or run only step 01 with --only 01")
    for split in SPLITS:  # a bad record (path, role, id, answer) is named with its line before any step runs
        read_pairs(data_dir / f"{split}_sft.jsonl", require_images=True)


def load_split(data_dir: str | Path, split: str, shape: str = "sft", **kwargs) -> PairList:
    """Read one split of a data folder (keyword arguments go to `read_pairs`)."""
    return read_pairs(split_file(data_dir, split, shape), **kwargs)


def fetch_raim(out: str | Path | None = None, ref: str = RAIM_COMMIT, timeout: float = 10.0) -> list[Path]:
    """Download the public RAIM-PIQA annotations (the JSONL files only; the images are not public).

    Raises:
        OfflineError: at once, when the host cannot be resolved or reached.
    """
    out = Path(out) if out else paths.RAIM_DOWNLOAD_DIR
    host = "raw.githubusercontent.com"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        raise OfflineError(
            f"cannot reach {host} ({exc}): no network. fix: on a machine with internet run "
            f"`idiff data fetch-raim`, or download {', '.join(RAIM_FILES)} from github.com/{RAIM_REPO} "
            f"(folder data/1536/) into {out}"
        ) from None
    written = []
    for name in RAIM_FILES:
        url = RAIM_RAW_URL.format(repo=RAIM_REPO, ref=ref, name=name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise OfflineError(f"download failed: {url}: {exc}. fix: download it by hand into {out}") from None
        target = out / name
        with storage.atomic_path(target) as tmp:
            tmp.write_bytes(body)
        read_pairs(target)  # fail now, not later, if what came back is not RAIM JSONL
        written.append(target)
    return written
