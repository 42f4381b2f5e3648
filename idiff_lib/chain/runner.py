"""The notebook chain: ``notebooks/NN_*.ipynb`` executed in order with papermill.

Every step writes into ``RUN_DIR/<notebook stem>/``:

- ``executed.ipynb``: the executed notebook (kept on failure too, to read the error);
- ``params.yaml``: the resolved parameters it ran with;
- ``metrics.json``: what the notebook measured (written by the notebook, `save_metrics`);
- ``step.json``: the fingerprint of the notebook, its parameters, its inputs, the library code
  and the upstream steps, written last. A step whose ``step.json`` matches is skipped, so a
  rerun after an interruption resumes where it stopped;
- ``started.json``: the fingerprint the step was started with. A step started again with the
  same fingerprint (it was interrupted) keeps its folder, so its trainers resume from their
  checkpoints; one started with another fingerprint (other parameters, code, data or upstream
  results) first has its folder cleared, so nothing made under other settings is reused.

Inside a notebook, the cell after ``parameters`` calls `notebook_context`, which validates the
injected values and resolves the default folders. Per-profile parameter values live in
``idiff_lib/configs/profiles/<notebook stem>.yaml`` (keys ``cpu``, ``paper``, ``tiny``; ``tiny``
is for the tests).
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from idiff_lib.core import paths
from idiff_lib.core import storage
from idiff_lib.core.errors import IdiffError, ParameterError, suggest

PROFILES = ("cpu", "paper", "tiny")
COMMON_PARAMS: dict[str, type] = {
    "profile": str,
    "data_dir": str,
    "run_dir": str,
    "step_dir": str,
    "fig_dir": str,
}
PROFILE_DIR = Path(__file__).resolve().parents[1] / "configs" / "profiles"
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


class StepFailed(IdiffError):
    """A notebook of the chain raised; names the step, the error and the executed copy."""


# --------------------------------------------------------------------------- notebook side
@dataclass
class Context:
    """What a notebook needs from the chain: resolved folders and its parameters."""

    step: str
    profile: str
    data_dir: Path
    run_dir: Path
    step_dir: Path
    fig_dir: Path
    params: dict[str, Any] = field(default_factory=dict)

    def upstream(self, step: str) -> Path:
        """The output folder of an earlier step of the same run."""
        return self.run_dir / step


def _check_type(name: str, value: Any, expected: type, where: str) -> None:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if expected is int and isinstance(value, bool):
        ok = False
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ParameterError(
            f"{where}: parameter {name!r} must be {expected.__name__}, got {type(value).__name__} {value!r}. "
            f"fix: pass a {expected.__name__} (e.g. -p {name} <value> with papermill, or --param {name}=<value>)"
        )


def notebook_context(namespace: dict[str, Any], step: str) -> Context:
    """Validate a notebook's parameters (from its annotations) and resolve the chain folders.

    Call it in the cell after ``parameters`` as ``ctx = pipeline.notebook_context(globals(), "NN_name")``.
    """
    annotations = namespace.get("__annotations__", {})
    params: dict[str, Any] = {}
    for name, annotation in annotations.items():
        if name.startswith("_") or name not in namespace:
            continue
        expected = annotation if isinstance(annotation, type) else _TYPES.get(str(annotation))
        value = namespace[name]
        if expected is not None and value is not None:
            _check_type(name, value, expected, step)
        params[name] = value
    profile = params.get("profile", "cpu")
    if profile not in PROFILES:
        raise ParameterError(f"{step}: unknown profile {profile!r}.{suggest(profile, PROFILES)} Choose one of {PROFILES}.")
    data_dir = Path(params.get("data_dir") or paths.DEMO_DIR).expanduser().resolve()
    run_dir = Path(params.get("run_dir") or paths.RUNS_DIR / "interactive").expanduser().resolve()
    step_dir = Path(params.get("step_dir") or run_dir / step).expanduser().resolve()
    fig_dir = Path(params.get("fig_dir") or paths.FIGURES_DIR).expanduser().resolve()
    for folder in (run_dir, step_dir, fig_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return Context(step, profile, data_dir, run_dir, step_dir, fig_dir, params)


def save_metrics(step_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Write a step's ``metrics.json`` atomically (the chain checks it exists)."""
    return storage.write_json(Path(step_dir) / "metrics.json", metrics)


def load_metrics(run_dir: str | Path, step: str) -> dict[str, Any]:
    path = Path(run_dir) / step / "metrics.json"
    if not path.exists():
        raise IdiffError(f"{path} not found: run step {step} first (idiff run --only {step})")
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- runner side
def available_steps(notebooks_dir: Path | None = None) -> list[str]:
    folder = notebooks_dir or paths.NOTEBOOKS_DIR
    return sorted(p.stem for p in folder.glob("[0-9][0-9]_*.ipynb"))


def profile_params(step: str, profile: str) -> dict[str, Any]:
    """The parameter values of `step` under `profile` (empty when the step has no profile file)."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}.{suggest(profile, PROFILES)} Choose one of {PROFILES}.")
    path = PROFILE_DIR / f"{step}.yaml"
    if not path.exists():
        return {}
    table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict(table.get(profile) or {})


def declared_params(notebook: Path) -> dict[str, dict[str, Any]]:
    """The notebook's ``parameters`` cell: name -> {"type": name, "default": literal text}."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    return {name: {"type": spec.get("inferred_type_name"), "default": spec.get("default")} for name, spec in declared.items()}


def validate_params(notebook: Path, params: dict[str, Any]) -> None:
    """Unknown keys and wrong types raise a ParameterError naming the notebook, the key and the fix."""
    declared = declared_params(notebook)
    for name, value in params.items():
        if name not in declared:
            raise ParameterError(
                f"{notebook.name}: unknown parameter {name!r}.{suggest(name, declared)} "
                f"Known parameters: {', '.join(sorted(declared))}."
            )
        expected = _TYPES.get(str(declared[name]["type"]))
        if expected is not None and value is not None and declared[name]["default"] != "None":
            _check_type(name, value, expected, notebook.name)


def _code_fingerprint() -> str:
    pkg = Path(__file__).resolve().parents[1]
    files = sorted(p for p in pkg.rglob("*") if p.suffix in (".py", ".json", ".yaml") and "__pycache__" not in p.parts)
    return storage.text_sha256("".join(f"{p.relative_to(pkg)}:{storage.file_sha256(p)}" for p in files))


def _data_fingerprint(data_dir: Path) -> str:
    """A hash of the data folder's JSONL files and the images they name (size + mtime for speed)."""
    if not data_dir.exists():
        return "missing"
    parts = []
    for f in sorted(data_dir.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            st = f.stat()
            parts.append(f"{f.relative_to(data_dir)}:{st.st_size}:{int(st.st_mtime)}")
    return storage.text_sha256("\n".join(parts))


@dataclass
class StepResult:
    step: str
    status: str  # "ran" | "skipped"
    seconds: float
    step_dir: Path


def run_chain(
    profile: str = "cpu",
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    *,
    from_step: str | None = None,
    only: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    fig_dir: str | Path | None = None,
    force: bool = False,
    notebooks_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[StepResult]:
    """Execute the chain's notebooks in order, skipping steps that are up to date.

    Args:
        profile: "cpu" (small, runs here), "paper" (real backbones and MLLM) or "tiny" (tests).
        data_dir: the data folder (default ``data/demo``).
        out: the run folder (default ``runs/<profile>``).
        from_step / only: a step name or its two-digit prefix to start from / to run alone.
        overrides: parameter values for every step that declares them (``--param k=v``).
        force: rerun steps even when up to date.
    """
    nb_dir = notebooks_dir or paths.NOTEBOOKS_DIR
    steps = available_steps(nb_dir)
    if not steps:
        raise IdiffError(f"no notebooks NN_*.ipynb in {nb_dir}")
    selected = _select(steps, from_step, only)
    data_dir = Path(data_dir or paths.DEMO_DIR).expanduser().resolve()
    if not data_dir.exists():
        raise ParameterError(f"--data {data_dir} does not exist. fix: give a folder holding train_sft.jsonl etc. "
                             "(`idiff data build-demo` rebuilds data/demo)")
    run_dir = Path(out or paths.RUNS_DIR / profile).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    figures = Path(fig_dir or paths.FIGURES_DIR).expanduser().resolve()
    overrides = dict(overrides or {})
    used_overrides: set[str] = set()
    code_fp, data_fp = _code_fingerprint(), _data_fingerprint(data_dir)
    upstream_fp = ""
    results: list[StepResult] = []
    t_chain = time.monotonic()
    for index, step in enumerate(steps, start=1):
        nb = nb_dir / f"{step}.ipynb"
        step_dir = run_dir / step
        declared = declared_params(nb)
        params: dict[str, Any] = {
            "profile": profile, "data_dir": str(data_dir), "run_dir": str(run_dir),
            "step_dir": str(step_dir), "fig_dir": str(figures),
        }
        params = {k: v for k, v in params.items() if k in declared}
        params.update(profile_params(step, profile))
        for key, value in overrides.items():
            if key in declared:
                params[key] = value
                used_overrides.add(key)
        validate_params(nb, params)
        fingerprint = storage.text_sha256(json.dumps(
            {"notebook": storage.file_sha256(nb), "params": params, "code": code_fp, "data": data_fp,
             "upstream": upstream_fp}, sort_keys=True, default=str))
        upstream_fp = fingerprint
        if step not in selected:
            continue
        prefix = f"[{index}/{len(steps)}] {step}"
        marker = step_dir / "step.json"
        if not force and _up_to_date(marker, fingerprint):
            log(f"{prefix}: up to date, skipped  (total {_fmt(time.monotonic() - t_chain)})")
            results.append(StepResult(step, "skipped", 0.0, step_dir))
            continue
        if _clear_if_stale(step_dir, fingerprint):
            log(f"{prefix}: outputs made with other parameters, code or data removed")
        log(f"{prefix}: running ...")
        t0 = time.monotonic()
        storage.write_json(step_dir / "started.json", {"fingerprint": fingerprint})
        _execute(nb, step_dir, params)
        seconds = time.monotonic() - t0
        storage.write_json(marker, {"step": step, "fingerprint": fingerprint, "profile": profile,
                                    "seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        log(f"{prefix}: done in {_fmt(seconds)}  (total {_fmt(time.monotonic() - t_chain)})")
        results.append(StepResult(step, "ran", seconds, step_dir))
    unused = set(overrides) - used_overrides
    if unused:
        log(f"warning: --param {', '.join(sorted(unused))} matched no parameter of the steps run")
    return results


def _select(steps: list[str], from_step: str | None, only: list[str] | None) -> list[str]:
    def find(name: str) -> str:
        hits = [s for s in steps if s == name or s.split("_", 1)[0] == name]
        if not hits:
            raise ParameterError(f"unknown step {name!r}.{suggest(name, steps)} Steps: {', '.join(steps)}")
        return hits[0]

    if only:
        return [find(n) for n in only]
    if from_step:
        return steps[steps.index(find(from_step)):]
    return list(steps)


def _up_to_date(marker: Path, fingerprint: str) -> bool:
    if not marker.exists() or not (marker.parent / "metrics.json").exists():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except json.JSONDecodeError:
        return False


def _clear_if_stale(step_dir: Path, fingerprint: str) -> bool:
    """Empty `step_dir` unless it was last started with `fingerprint` (an interrupted run of this very step)."""
    if not step_dir.exists() or not any(step_dir.iterdir()):
        return False
    try:
        started = json.loads((step_dir / "started.json").read_text(encoding="utf-8")).get("fingerprint")
    except (FileNotFoundError, json.JSONDecodeError):
        started = None
    if started == fingerprint:
        return False
    shutil.rmtree(step_dir)
    return True


def _execute(nb: Path, step_dir: Path, params: dict[str, Any]) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    step_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("step.json", "metrics.json"):
        (step_dir / stale).unlink(missing_ok=True)
    storage.write_yaml(step_dir / "params.yaml", params)
    executed = step_dir / "executed.ipynb"
    try:
        papermill.execute_notebook(
            str(nb), str(executed), parameters=params, kernel_name="python3",
            cwd=str(paths.PROJ_ROOT), progress_bar=False, log_output=False,
        )
    except PapermillExecutionError as exc:
        raise StepFailed(
            f"step {nb.stem} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
            f"  the executed notebook, with the traceback, is {executed}"
        ) from None
    if not (step_dir / "metrics.json").exists():
        raise StepFailed(f"step {nb.stem} finished without writing {step_dir / 'metrics.json'} "
                         "(the notebook must end with pipeline.save_metrics(ctx.step_dir, ...))")


def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs; values are Python literals (1, 1e-4, True, [1, 2]), true/false, or text."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ParameterError(f"--param {item!r}: expected key=value, e.g. --param epochs=1")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = yaml.safe_load(value) if value.strip() else ""
            out[key.strip()] = parsed if isinstance(parsed, (bool, type(None))) else value
    return out


def prepare_notebooks(out: str | Path, profile: str = "tiny", data_dir: str | Path | None = None,
                      overrides: dict[str, Any] | None = None, notebooks_dir: Path | None = None) -> list[Path]:
    """Write copies of the notebooks with the profile's parameters injected (for ``pytest --nbval-lax``).

    All copies share one run folder ``out/run``, so executed in order they form a chain.
    """
    import papermill

    out = Path(out).resolve()
    nb_dir = notebooks_dir or paths.NOTEBOOKS_DIR
    run_dir = out / "run"
    data_dir = Path(data_dir or paths.DEMO_DIR).resolve()
    written = []
    for step in available_steps(nb_dir):
        nb = nb_dir / f"{step}.ipynb"
        declared = declared_params(nb)
        params = {"profile": profile, "data_dir": str(data_dir), "run_dir": str(run_dir),
                  "step_dir": str(run_dir / step), "fig_dir": str(out / "figures")}
        params = {k: v for k, v in params.items() if k in declared}
        params.update(profile_params(step, profile))
        params.update({k: v for k, v in (overrides or {}).items() if k in declared})
        validate_params(nb, params)
        target = out / f"{step}.ipynb"
        out.mkdir(parents=True, exist_ok=True)
        papermill.execute_notebook(str(nb), str(target), parameters=params, prepare_only=True,
                                   kernel_name="python3", progress_bar=False)
        written.append(target)
    return written


# --------------------------------------------------------------------------- CLI
def add_cli(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the notebook chain with papermill (resumes; skips up-to-date steps)")
    run.add_argument("--profile", default="cpu", choices=PROFILES, help="cpu: small, runs on a laptop; "
                     "paper: the paper's backbones and MLLM (GPU); tiny: for tests")
    run.add_argument("--data", default=None, help="data folder with {train,val,test}_sft.jsonl (default data/demo)")
    run.add_argument("--out", default=None, help="run folder (default runs/<profile>)")
    run.add_argument("--from", dest="from_step", default=None, help="start at this step (name or NN)")
    run.add_argument("--only", action="append", default=None, help="run only this step (repeatable)")
    run.add_argument("--param", action="append", default=None, metavar="KEY=VALUE",
                     help="set a parameter in every step that declares it")
    run.add_argument("--fig-dir", default=None, help="where figures go (default figures/)")
    run.add_argument("--force", action="store_true", help="rerun steps even when up to date")
    run.set_defaults(func=_cli_run)

    prep = sub.add_parser("prepare-notebooks", help="write parameterised copies of the notebooks (for nbval)")
    prep.add_argument("--out", required=True)
    prep.add_argument("--profile", default="tiny", choices=PROFILES)
    prep.add_argument("--data", default=None)
    prep.add_argument("--param", action="append", default=None, metavar="KEY=VALUE")
    prep.set_defaults(func=_cli_prepare)


def _cli_run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    results = run_chain(args.profile, args.data, args.out, from_step=args.from_step, only=args.only,
                        overrides=parse_overrides(args.param), fig_dir=args.fig_dir, force=args.force,
                        log=lambda m: print(m, flush=True))
    ran = sum(r.status == "ran" for r in results)
    print(f"chain finished: {ran} step(s) run, {len(results) - ran} up to date, {_fmt(time.monotonic() - t0)}",
          flush=True)
    return 0


def _cli_prepare(args: argparse.Namespace) -> int:
    for path in prepare_notebooks(args.out, args.profile, args.data, parse_overrides(args.param)):
        print(path)
    return 0

