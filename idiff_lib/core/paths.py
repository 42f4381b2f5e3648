"""Every path the workbench uses comes from here.

Each location can be moved with an environment variable, so a user can keep data, runs and
figures outside the checkout without editing code.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[2]
README = PROJ_ROOT / "README.md"


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


DATA_DIR = _env_path("IDIFF_DATA_DIR", PROJ_ROOT / "data")
DEMO_DIR = _env_path("IDIFF_DEMO_DIR", DATA_DIR / "demo")
# The photo library the demo set and the synthetic pairs are made from (JPEGs + manifest.jsonl).
PHOTOS_DIR = _env_path("IDIFF_PHOTOS_DIR", DATA_DIR / "photos")
NOTEBOOKS_DIR = _env_path("IDIFF_NOTEBOOKS_DIR", PROJ_ROOT / "notebooks")
FIGURES_DIR = _env_path("IDIFF_FIGURES_DIR", PROJ_ROOT / "figures")
RUNS_DIR = _env_path("IDIFF_RUNS_DIR", PROJ_ROOT / "runs")
CACHE_DIR = _env_path("IDIFF_CACHE_DIR", PROJ_ROOT / ".cache")
# The 100 public RAIM-PIQA rationales, read in place (never copied into the project).
SHARED_RAIM_DIR = _env_path("IDIFF_RAIM_DIR", PROJ_ROOT.parent / "shared" / "raim_piqa")
# Where `idiff data fetch-raim` puts the public annotations on a user's machine.
RAIM_DOWNLOAD_DIR = _env_path("IDIFF_RAIM_DOWNLOAD_DIR", DATA_DIR / "raim_piqa")


def raim_dir() -> Path | None:
    """The first folder that holds the public RAIM-PIQA annotations, or None."""
    for folder in (SHARED_RAIM_DIR, RAIM_DOWNLOAD_DIR):
        if (folder / "train_sft_1536.jsonl").exists():
            return folder
    return None
