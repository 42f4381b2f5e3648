"""The demo benchmark's datasheet (``data/demo/README.md``): the template ``datasheet.md`` filled in.

The prose lives in ``datasheet.md`` beside this module; `render_datasheet` fills its ``$name``
fields (with `string.Template`) from the build's counts, the quality model of
`idiff_lib.data.degrade` and the photo library's manifest (`idiff_lib.demo_data.photos`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any

from idiff_lib.data import degrade
from idiff_lib.demo_data import library, photos

TEMPLATE = Path(__file__).with_name("datasheet.md")
ORACLE_BEGIN = "<!-- oracle:begin -->"
ORACLE_END = "<!-- oracle:end -->"
ORACLE_MISSING = "Not computed yet: run `python benchmarks/demo_oracle.py`."


def render_datasheet(counts: Mapping[str, Any], splits: tuple[str, ...], seed: int, size_bytes: int,
                     per_photo: Mapping[str, int], oracle_section: str, build: Mapping[str, Any]) -> str:
    """The datasheet's Markdown.

    Args:
        counts: per split the counts of `build._count` (plus the Laplacian baseline), and ``seconds``.
        splits: the split names, in table order.
        seed: the build's master seed.
        size_bytes: the data folder's size on disk, without the datasheet.
        per_photo: pairs per source photo.
        oracle_section: the text between the oracle markers (`oracle_markdown`).
        build: the build's sizes: ``global_long``, ``detail_side``, ``work_long``, ``jpeg_quality``, ``margin``.
    """
    fields = {
        "seed": seed,
        "size_mb": f"{size_bytes / 1e6:.1f}",
        "seconds": counts.get("seconds", "?"),
        "count_rows": "\n".join(_count_row(s, counts[s]) for s in splits),
        "gamma": degrade.GAMMA,
        "defect_rows": "\n".join(f"| {k.name} | {k.weight} | {', '.join(k.attributes)} | {k.description} |"
                                 for k in degrade.DEFECTS.values()),
        "region_rows": "\n".join(f"| {cat} | {', '.join(f'{r} {v}' for r, v in w.items())} |"
                                 for cat, w in degrade.REGION_WEIGHTS.items()),
        **photo_fields(per_photo),
        "oracle_section": oracle_section,
        **build,
    }
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(fields)


def photo_fields(per_photo: Mapping[str, int]) -> dict[str, str]:
    """The source-photo fields of the datasheet, from the photo library's manifest."""
    specs = photos.catalogue()
    split_rows = []
    for s in library.SPLIT_SHARES:
        mine = [p for p in specs if p.split == s]
        split_rows.append(f"| {s} | {len(mine)} | {sum(p.category == 'person' for p in mine)} | "
                          f"{sum(p.category == 'scene' for p in mine)} | {len({q for p in mine for q in p.people})} |")
    licences: dict[str, int] = {}
    for p in specs:
        licences[p.licence] = licences.get(p.licence, 0) + 1
    folder = photos.library_dir()
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    return {
        "split_photo_rows": "\n".join(split_rows),
        "licence_rows": "\n".join(f"| {k} | {v} |" for k, v in sorted(licences.items(), key=lambda kv: (-kv[1], kv[0]))),
        "photo_rows": "\n".join(f"| {p.name} | {p.category} | {p.split} | {per_photo.get(p.name, 0)} | "
                                f"{', '.join(p.people)} | {p.package} {p.version} | `{p.path}` | {p.credit} | {p.licence} |"
                                for p in sorted(specs, key=lambda p: (p.split, p.category, p.name))),
        "library_long": str(library.LONG_SIDE), "library_quality": str(library.LIBRARY_JPEG_QUALITY),
        "library_mb": f"{size / 1e6:.1f}",
    }


def _count_row(split: str, c: Mapping[str, Any]) -> str:
    lap = f"{c['laplacian_global']:.3f} / {c['laplacian_detail']:.3f}" if "laplacian_global" in c else "-"
    return (f"| {split} | {c['pairs']} | {c['person']} | {c['scene']} | {c['A']} | {c['B']} | "
            f"{c['tradeoff']} | {lap} | {', '.join(c['photos'])} |")


def kept_oracle_section(old: str) -> str:
    """The oracle section of an existing datasheet, or the 'not computed' note."""
    if ORACLE_BEGIN not in old:
        return ORACLE_MISSING
    return old[old.index(ORACLE_BEGIN) + len(ORACLE_BEGIN):old.index(ORACLE_END)].strip("\n")


def oracle_markdown(oracle: dict) -> str:
    """The datasheet section for the results of ``benchmarks/demo_oracle.py``."""
    rows = ["FR-oracle: each side's full-reference score against its pristine rendition (pyiqa); the side "
            "with the better score is the oracle's pick. Laplacian baseline: the side whose grey image has the "
            "larger variance of the Laplacian (\"sharper\") is picked. Agreement = fraction of pairs where the "
            "pick equals the label.", "",
            "| check | view | " + " | ".join(oracle["splits"]) + " | all |",
            "| --- | --- | " + " | ".join("---" for _ in oracle["splits"]) + " | --- |"]
    for r in oracle["rows"]:
        cells = [f"{r[s]:.3f}" if r.get(s) is not None else "-" for s in oracle["splits"] + ["all"]]
        rows.append(f"| {r['check']} | {r['view']} | " + " | ".join(cells) + " |")
    rows += ["", f"Computed by `{oracle.get('command', 'python benchmarks/demo_oracle.py')}` in "
             f"{oracle.get('seconds', '?')} s ({oracle.get('n', '?')} pairs).", "",
             "The quality model is not a fidelity measure: it weights each defect by how much an expert minds it. "
             "Fidelity metrics favour smoothing over noise, so a large share of the disagreements are pairs whose "
             "labelled winner keeps its texture with some noise or halos while the loser is smeared, blurred or "
             "compressed, the trade-off that the RAIM experts mostly settle in favour of preserved texture."]
    return "\n".join(rows)
