"""RAIM-PIQA pairs: the `Pair` record and the JSONL reader/writer for all three file shapes.

The NTIRE 2026 RAIM challenge, Track 1, ships its samples as JSONL (``narthchin/RAIM-PIQA``,
``data/1536/``). One line is one pair of renditions of a shot:

- **SFT**: ``{"images": [c0, c1], "messages": [system, user, assistant]}``;
- **GRPO**: ``{"images": [c0, c1], "messages": [system, user], "solution": "..."}``;
- **test** (unlabeled): ``{"images": [c0, c1], "messages": [system, user]}``.

``c0`` is the merged global view (Image A left, Image B right) and ``c1`` the merged detail
crops. A pair may instead give two separate images, ``images: [A, B]`` (see `Pair.layout`).
The labelled text is ``<thinking>Region Attribute: ...</thinking><answer>A|B</answer>``.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from idiff_lib.core import storage
from idiff_lib.core.errors import DataError
from idiff_lib.core.ontology import ANSWERS
from idiff_lib.core.ontology import format_completion  # noqa: F401  (kept beside its reader, parse_completion)

Shape = Literal["sft", "grpo", "test"]
Layout = Literal["merged", "separate"]

# The challenge baseline's prompts (RAIM-PIQA data/1536, identical on every public line).
SYSTEM_PROMPT = (
    "You are an expert in Image Quality Assessment (IQA). Compare the two images (Image A on the "
    "left, Image B on the right) provided. Analyze the differences in detail (texture, noise, "
    "sharpness, etc.) using the <thinking>...</thinking> format, and finally provide a conclusion "
    "in <answer>A/B</answer>."
)
USER_PROMPT = (
    "<image><image>\nPlease compare the following image pairs. The first pair is the global view, "
    "followed by detailed crops."
)

_THINK_RE = re.compile(r"<\s*thinking\s*>(.*?)<\s*/\s*thinking\s*>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN_RE = re.compile(r"<\s*thinking\s*>(.*)", re.IGNORECASE | re.DOTALL)
_ANSWER_RE = re.compile(r"<\s*answer\s*>(.*?)<\s*/\s*answer\s*>", re.IGNORECASE | re.DOTALL)
_ID_SUFFIX_RE = re.compile(r"(?:_merged)?(?:_c\d+)?$|_(?:a|b|left|right)$", re.IGNORECASE)
_CATEGORY_PREFIX = {"p": "person", "s": "scene"}
# The chat roles a record's messages may carry, compared without case ("Assistant" is the assistant).
ROLES = ("system", "user", "assistant")
# A pair id is a plain name: it becomes part of file names (the swapped worked pair, side files).
_PLAIN_ID_RE = re.compile(r"[\w][\w.+@-]{0,127}")


@dataclass(frozen=True)
class Completion:
    """A parsed ``<thinking>...</thinking><answer>X</answer>`` text.

    Attributes:
        thinking: the text inside ``<thinking>``, stripped ("" when absent).
        answer: "A" or "B", or None when the answer is missing or not a single A/B letter.
        raw_answer: the text inside ``<answer>`` as written (None when the tag is missing).
        problems: what the parser had to tolerate or could not read, e.g. "missing </thinking>".
    """

    thinking: str
    answer: str | None
    raw_answer: str | None
    problems: tuple[str, ...] = ()

    @property
    def lines(self) -> list[str]:
        """The non-empty rationale lines."""
        return [ln.strip() for ln in self.thinking.splitlines() if ln.strip()]


def answer_tags(text: str | None) -> list[str]:
    """The text inside every ``<answer>...</answer>`` tag, in order (whitespace and case in the tags
    tolerated). The project's one rule: the first tag counts, and more than one is a problem (a
    DataError in a reference, a format failure in a prediction)."""
    return _ANSWER_RE.findall(text) if isinstance(text, str) else []


def parse_completion(text: str | None) -> Completion:
    """Read a completion, tolerating whitespace, tag case and missing tags (all reported)."""
    problems: list[str] = []
    text = text or ""
    if not text.strip():
        return Completion("", None, None, ("empty completion",))
    m = _THINK_RE.search(text)
    if m:
        thinking = m.group(1)
    else:
        opened = _THINK_OPEN_RE.search(text)
        if opened:
            problems.append("missing </thinking>")
            thinking = _ANSWER_RE.split(opened.group(1))[0]
        else:
            problems.append("missing <thinking>")
            thinking = _ANSWER_RE.sub("", text)
    answers = answer_tags(text)
    raw_answer = answers[0].strip() if answers else None
    answer = None
    if not answers:
        problems.append("missing <answer>")
    else:
        if len(answers) > 1:
            problems.append(f"{len(answers)} <answer> tags, the first one counts")
        letter = raw_answer.strip().strip(".").strip()
        if letter.upper() in ANSWERS and len(letter) == 1:
            answer = letter.upper()
        else:
            problems.append(f"answer {raw_answer!r} is not A or B")
    thinking = re.sub(r"<\s*/?\s*(thinking|answer)\s*>", "", thinking, flags=re.IGNORECASE)
    return Completion(thinking.strip(), answer, raw_answer, tuple(problems))


def pair_id(image_ref: str) -> str:
    """The pair id from an image name: ``data/1536/images/p_000_merged_c0.jpg`` -> ``p_000``."""
    stem = Path(image_ref).stem
    return _ID_SUFFIX_RE.sub("", stem, count=1) or stem


def category_from_id(pid: str) -> str | None:
    """``person`` for a ``p_`` prefix, ``scene`` for ``s_``, else None."""
    prefix = pid.split("_", 1)[0].lower() if "_" in pid else ""
    return _CATEGORY_PREFIX.get(prefix)


@dataclass
class Pair:
    """One sample: two renditions of a shot, with the expert's verdict when labelled.

    Attributes:
        id: from the first image's stem (``p_000``).
        image_refs: the image paths as written in the file.
        images: the resolved paths (None for an image that was not found).
        layout: "merged" (``[c0, c1]``, A|B side by side) or "separate" (``[A, B]``).
        category: "person", "scene", or None when the name carries no prefix.
        shape: the file shape the record came from.
        completion: the assistant text or GRPO solution (None when unlabeled).
        thinking / answer: parsed from `completion`.
        problems: what the completion parser tolerated.
        record: the JSON object as read, kept for an exact round trip.
        source / line: where the record came from (1-based line).
    """

    id: str
    image_refs: list[str]
    images: list[Path | None]
    layout: Layout = "merged"
    category: str | None = None
    shape: Shape = "test"
    completion: str | None = None
    thinking: str = ""
    answer: str | None = None
    problems: tuple[str, ...] = ()
    record: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    line: int | None = None

    @property
    def labelled(self) -> bool:
        return self.completion is not None

    def error(self, problem: str, fix: str = "") -> DataError:
        """A DataError that points at this pair's file and line."""
        return DataError(self.source, f"pair {self.id}: {problem}", fix, self.line)

    def image_path(self, index: int) -> Path:
        """The resolved path of image `index`, or a DataError naming the file, line and fix."""
        path = self.images[index]
        if path is None:
            raise self.error(
                f"image not found: {self.image_refs[index]!r}",
                "put the image there (relative to the JSONL file, or one or two folders above it), "
                "or pass data_root= / --data-root pointing at the folder that holds it",
            )
        return path

    def to_record(self, shape: Shape | None = None) -> dict[str, Any]:
        """The JSON object for `shape` (default: as read). Unknown keys of the source are kept."""
        shape = shape or self.shape
        # The record as read, unless the completion was replaced (e.g. by a model's answer).
        if shape == self.shape and self.record and _shape_and_completion(self.record)[1] == self.completion:
            return self.record
        rec = {k: v for k, v in self.record.items() if k not in ("messages", "solution")}
        rec["images"] = list(self.image_refs)
        if self.layout == "separate" and not _looks_separate(self.image_refs):
            rec["layout"] = "separate"
        messages = _messages_without_answer(self.record)
        if shape == "sft":
            if self.completion is None:
                raise self.error("cannot write an unlabeled pair in the SFT shape")
            messages.append({"role": "assistant", "content": self.completion})
        rec["messages"] = messages
        if shape == "grpo":
            if self.completion is None:
                raise self.error("cannot write an unlabeled pair in the GRPO shape")
            rec["solution"] = self.completion
        return rec


def make_pair(
    image_refs: list[str],
    completion: str | None = None,
    *,
    layout: Layout = "merged",
    shape: Shape | None = None,
    base_dir: str | Path | None = None,
) -> Pair:
    """Build a Pair in code (the demo generator, tests). Images resolve against `base_dir`."""
    shape = shape or ("sft" if completion is not None else "test")
    pid = pair_id(image_refs[0])
    parsed = parse_completion(completion) if completion is not None else None
    base = Path(base_dir) if base_dir else None
    pair = Pair(
        id=pid,
        image_refs=list(image_refs),
        images=[_resolve(r, base, None) if base else None for r in image_refs],
        layout=layout,
        category=category_from_id(pid),
        shape="test",
        completion=completion,
        thinking=parsed.thinking if parsed else "",
        answer=parsed.answer if parsed else None,
        problems=parsed.problems if parsed else (),
        record={},
    )
    pair.record = pair.to_record(shape)
    pair.shape = shape
    return pair


def default_messages() -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_PROMPT}]


def message_role(message: Any) -> str | None:
    """A message's role in lower case (``"Assistant"`` is ``"assistant"``), or None when it has no string role."""
    role = message.get("role") if isinstance(message, dict) else None
    return role.strip().lower() if isinstance(role, str) else None


def prompt_messages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's system and user messages, each as ``{"role", "content"}`` with the role in lower case.

    Only those two fields of those two roles: an assistant turn (the reference rationale), in any
    case, and any other key a message carries never pass. A record without messages gets the
    challenge's prompts (`default_messages`).
    """
    messages = record.get("messages")
    if not messages:
        return default_messages()
    return [{"role": message_role(m), "content": m.get("content")} for m in messages
            if message_role(m) in ("system", "user")]


def _messages_without_answer(record: dict[str, Any]) -> list[dict[str, Any]]:
    messages = record.get("messages")
    if not messages:
        return default_messages()
    return [dict(m) for m in messages if message_role(m) != "assistant"]


def _looks_separate(refs: list[str]) -> bool:
    stems = [Path(r).stem.lower() for r in refs]
    return len(stems) == 2 and any(stems[0].endswith(s) for s in ("_a", "_left")) and any(
        stems[1].endswith(s) for s in ("_b", "_right")
    )


LAYOUTS = ("merged", "separate")


def _layout(record: dict[str, Any], refs: list[str], source: Path | None, line: int | None) -> Layout:
    if "layout" not in record:
        return "separate" if _looks_separate(refs) else "merged"
    if record["layout"] not in LAYOUTS:
        raise DataError(source, f"unknown \"layout\" {record['layout']!r}",
                        f"write one of {', '.join(repr(k) for k in LAYOUTS)}, or leave it out to infer it "
                        "from the image names", line)
    return record["layout"]


# How many parent folders of the JSONL file's folder an image path is also tried against: the
# RAIM-PIQA files name `data/1536/images/...` relative to their repository root, two folders above
# `data/raim_piqa/train_sft_1536.jsonl` (and above `../shared/raim_piqa/`).
PARENT_LEVELS = 2


def _resolve(ref: str, base: Path | None, data_root: Path | None) -> Path | None:
    """Relative to the JSONL folder, then `data_root`, then `PARENT_LEVELS` parent folders."""
    p = Path(ref)
    if p.is_absolute():
        return p if p.exists() else None
    candidates: list[Path] = []
    if base is not None:
        candidates.append(base / p)
    if data_root is not None:
        candidates += [data_root / p, data_root / p.name, data_root / "images" / p.name]
    if base is not None:
        candidates += [parent / p for parent in base.absolute().parents[:PARENT_LEVELS]
                       if parent != parent.parent]  # never the filesystem root
    for cand in candidates:
        if cand.exists():
            return cand
    return None


def _outside_root(ref: str) -> str | None:
    """Why an image path may reach outside the data folders (absolute, or `..` above its folder), or None."""
    if Path(ref).is_absolute():
        return "is an absolute path"
    if os.path.normpath(ref).split(os.sep)[0] == os.pardir:
        return "climbs above its folder with '..'"
    return None


def _escapes_roots(path: Path, base: Path | None, data_root: Path | None) -> bool:
    """True when `path`'s real location (symbolic links followed) is outside every folder images may come from.

    Those folders are the ones `_resolve` searches: the JSONL file's folder, `data_root` and
    `PARENT_LEVELS` parent folders of the JSONL file's folder, each by its own real path.
    """
    if base is None:
        return False
    roots = [base.resolve()] + ([data_root.resolve()] if data_root is not None else [])
    roots += [parent for parent in base.resolve().parents[:PARENT_LEVELS] if parent != parent.parent]
    real = path.resolve()
    return not any(real.is_relative_to(root) for root in roots)


def _shape_and_completion(record: dict[str, Any]) -> tuple[Shape, str | None]:
    if "solution" in record:
        return "grpo", record["solution"]
    for message in record.get("messages") or []:
        if message_role(message) == "assistant":
            return "sft", message.get("content")
    return "test", None


def _check_messages(record: dict[str, Any], source: Path | None, line: int | None) -> None:
    """Refuse messages that are not objects with a system, user or assistant role (any case)."""
    messages = record.get("messages")
    if messages is None:
        return
    if not isinstance(messages, list):
        raise DataError(source, f"'messages' must be a list of {{\"role\", \"content\"}} objects, got "
                        f"{type(messages).__name__}", "write the chat as a list of messages, or leave it out", line)
    for i, message in enumerate(messages, start=1):
        role = message_role(message)
        if role not in ROLES:
            shown = message.get("role") if isinstance(message, dict) else message
            raise DataError(source, f"message {i} has role {shown!r}",
                            f"give every message a role of {', '.join(ROLES)} (any case)", line)


def check_pair_id(pid: str, source: Path | None = None, line: int | None = None) -> str:
    """`pid` when it is a plain name (letters, digits, ``_ . + @ -``, not starting with a dot), else a DataError."""
    if not _PLAIN_ID_RE.fullmatch(pid):
        raise DataError(source, f"pair id {pid!r} is not a plain name",
                        "use letters, digits, '_', '-', '.', '+' or '@' (at most 128, not starting with '.' "
                        "or '-'), with no path separators: rename the images or fix the explicit \"id\"", line)
    return pid


class PairList(list):
    """A list of pairs that also remembers the samples skipped with ``skip_bad=True``."""

    def __init__(self, pairs: Iterable[Pair] = (), skipped: list[DataError] | None = None):
        super().__init__(pairs)
        self.skipped: list[DataError] = skipped or []


def spread_subset(pairs: Sequence[Pair], n: int, keep_ids: Iterable[str] = ()) -> list[Pair]:
    """`n` of `pairs` at evenly spaced positions, in their order (all of them when `n` is 0 or too big).

    A split is usually written photo by photo, so its first `n` pairs come from a few photos; evenly
    spaced ones come from many. Pairs named in `keep_ids` (the worked pair) are always among them.
    """
    items = list(pairs)
    if not n or n >= len(items):
        return items
    wanted = set(keep_ids)
    keep = [i for i, p in enumerate(items) if p.id in wanted][:n]
    others = [i for i in range(len(items)) if i not in keep]
    rest = n - len(keep)
    picked = [others[(k * len(others)) // rest] for k in range(rest)]
    return [items[i] for i in sorted(set(keep) | set(picked))]


def majority_answer(pairs: Iterable[Pair], default: str = "A") -> str:
    """The answer most of `pairs` give (the first one met on a tie), or `default` when none has one: the
    prior letter a writer falls back on."""
    counts = Counter(p.answer for p in pairs if p.answer in ANSWERS)
    return counts.most_common(1)[0][0] if counts else default


def parse_record(
    record: Any,
    *,
    source: Path | None = None,
    line: int | None = None,
    data_root: str | Path | None = None,
    require_images: bool = False,
    allow_outside_root: bool = False,
) -> Pair:
    """Turn one JSON object into a Pair, or raise a DataError that names its file and line."""
    if not isinstance(record, dict):
        raise DataError(source, f"expected a JSON object, got {type(record).__name__}",
                        "each line must be one object with an 'images' list", line)
    refs = record.get("images")
    if not isinstance(refs, list) or len(refs) != 2 or not all(isinstance(r, str) for r in refs):
        raise DataError(source, f"'images' must be a list of two paths, got {refs!r}",
                        "write [c0, c1] (merged global and detail views) or [A, B] with "
                        "\"layout\": \"separate\"", line)
    _check_messages(record, source, line)
    shape, completion = _shape_and_completion(record)
    if shape != "test" and not isinstance(completion, str):
        raise DataError(source, f"the {shape} answer text is {type(completion).__name__}, not a string",
                        "put the '<thinking>...</thinking><answer>A</answer>' text there", line)
    pid = check_pair_id(str(record.get("id") or pair_id(refs[0])), source, line)
    for ref in refs:
        why = _outside_root(ref) if not allow_outside_root else None
        if why:
            raise DataError(source, f"image path {ref!r} {why}, so it may point outside the data folders",
                            "write it relative to the JSONL file's folder (or to --data-root), or, if you "
                            "mean it, pass --allow-outside-root to `idiff data check` or set "
                            "IDIFF_ALLOW_OUTSIDE_ROOT=1 (every command)", line)
    base = source.parent if source is not None else None
    root = Path(data_root) if data_root is not None else None
    images = [_resolve(r, base, root) for r in refs]
    for ref, image in zip(refs, images):
        if image is not None and not allow_outside_root and _escapes_roots(image, base, root):
            raise DataError(source, f"image path {ref!r} leads through a symbolic link to {image.resolve()}, "
                            "outside the data folders",
                            "copy the image into the data folder (or point --data-root at its real folder), or, "
                            "if you mean it, pass --allow-outside-root to `idiff data check` or set "
                            "IDIFF_ALLOW_OUTSIDE_ROOT=1 (every command)", line)
    pair = Pair(
        id=pid, image_refs=list(refs), images=images, layout=_layout(record, refs, source, line),
        category=record.get("category") or category_from_id(pid), shape=shape,
        completion=completion, record=record, source=source, line=line,
    )
    if completion is not None:
        n_answers = len(answer_tags(completion))
        if n_answers > 1:
            raise DataError(source, f"pair {pid}: the labelled text has {n_answers} <answer> tags",
                            "keep exactly one <answer>A</answer> or <answer>B</answer> at the end", line)
        parsed = parse_completion(completion)
        if parsed.answer is None:
            raise DataError(
                source, f"pair {pid}: labelled answer is not A or B "
                f"({'; '.join(parsed.problems)})",
                "end the text with <answer>A</answer> or <answer>B</answer>, or drop the "
                "answer to make the line unlabeled", line)
        pair.thinking, pair.answer, pair.problems = parsed.thinking, parsed.answer, parsed.problems
    if require_images:
        for i in range(2):
            pair.image_path(i)
    return pair


def read_pairs(
    path: str | Path,
    *,
    data_root: str | Path | None = None,
    require_images: bool = False,
    skip_bad: bool = False,
    limit: int | None = None,
    allow_outside_root: bool | None = None,
) -> PairList:
    """Read a RAIM-PIQA JSONL file (SFT, GRPO or unlabeled) into pairs.

    Args:
        path: the JSONL file.
        data_root: a folder to look for images in, after the JSONL file's folder.
        require_images: raise (or skip) when an image file is not found.
        skip_bad: report bad samples as warnings and in `PairList.skipped` instead of raising.
        limit: read at most this many pairs.
        allow_outside_root: accept absolute image paths and ones that climb out with ``..``
            (default: when the environment variable ``IDIFF_ALLOW_OUTSIDE_ROOT`` is ``1``, which
            every command and the notebook chain then follow).

    Image paths resolve relative to the JSONL file's folder, then `data_root`, then at most
    `PARENT_LEVELS` parent folders of the JSONL file's folder.

    Raises:
        DataError: naming the file, the line and the fix, for the first bad sample.
    """
    path = Path(path)
    if allow_outside_root is None:
        allow_outside_root = os.environ.get("IDIFF_ALLOW_OUTSIDE_ROOT", "") == "1"
    if not path.exists():
        raise DataError(path, "file not found", "check the --data path (a RAIM-PIQA .jsonl file)")
    if path.is_dir():
        raise DataError(path, "is a folder, not a JSONL file", "pass the path of a RAIM-PIQA .jsonl file")
    pairs = PairList()
    seen: dict[str, int] = {}
    any_line = False
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if limit is not None and len(pairs) >= limit:
                break
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]  # a UTF-8 byte-order mark is accepted (as utf-8-sig)
            if not raw.strip():
                continue
            any_line = True
            try:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(path, f"not UTF-8 ({exc.reason} at byte {exc.start})",
                                    "save the file as UTF-8", lineno) from None
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DataError(path, f"malformed JSON: {exc.msg} (column {exc.colno})",
                                    "fix or remove that line", lineno) from None
                pair = parse_record(record, source=path, line=lineno, data_root=data_root,
                                    require_images=require_images, allow_outside_root=allow_outside_root)
                if pair.id in seen:
                    raise DataError(path, f"duplicate pair id {pair.id!r} (first on line {seen[pair.id]})",
                                    "give every pair distinct image names or an explicit 'id'", lineno)
                seen[pair.id] = lineno
                pairs.append(pair)
            except DataError as err:
                if not skip_bad:
                    raise
                pairs.skipped.append(err)
                warnings.warn(f"skipped bad sample: {err}", stacklevel=2)
    if not any_line and limit != 0:
        raise DataError(path, "the file is empty (no JSON lines)",
                        "point at a RAIM-PIQA .jsonl file with one JSON object per pair")
    return pairs


def write_pairs(pairs: Iterable[Pair], path: str | Path, shape: Shape | None = None) -> Path:
    """Write pairs as JSONL, atomically. With `shape=None` each record is written as it was read."""
    return storage.write_jsonl(path, (p.to_record(shape) for p in pairs))


def summarise(pairs: Iterable[Pair]) -> dict[str, Any]:
    """Counts for a quick look: pairs, per category, per answer, labelled."""
    pairs = list(pairs)
    out: dict[str, Any] = {"pairs": len(pairs), "labelled": sum(p.labelled for p in pairs)}
    out["category"] = _count(p.category or "unknown" for p in pairs)
    out["answer"] = _count(p.answer or "none" for p in pairs)
    return out


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))
