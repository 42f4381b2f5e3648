"""The notebook chain: ``notebooks/NN_*.ipynb`` executed in order with papermill.

Every step writes into ``RUN_DIR/<notebook stem>/`` (names in `idiff_lib.core.layout`):

- ``executed.ipynb``: the executed notebook (kept on failure too, to read the error);
- ``params.yaml``: the full resolved parameters it ran with (every field of its settings);
- ``metrics.json``: what the notebook measured (written by the notebook, `save_metrics`);
- ``step.json``: the fingerprint of the notebook, its parameters, its inputs, the library code
  and the upstream steps, written last. A step whose ``step.json`` matches is skipped, so a
  rerun after an interruption resumes where it stopped;
- ``started.json``: the fingerprint the step was started with. A step started again with the
  same fingerprint (it was interrupted) keeps its folder, so its trainers resume from their
  checkpoints; one started with another fingerprint (other parameters, code, data or upstream
  results) first has its folder moved aside to ``RUN_DIR/.superseded/<step>-<UTC time>/`` (never
  deleted by a run: trained work is kept), so nothing made under other settings is reused.

`idiff_lib.chain.folders` keeps those folders (and prunes them when asked), holds the run folder's
lock for the whole run (one ``idiff run`` per run folder; ``--status`` takes none) and refuses a
run or figure folder inside the data folder.

Both markers also hold the fingerprint's parts (notebook, parameters, code, data, upstream), so
``idiff run --status`` (`chain_status`) can say why a step is out of date. The data part is a hash
of the data folder's file contents (cached per file by path, size and times in
``.cache/idiff/data_hashes.json``); the code part hashes the library's Python files by their syntax
tree without docstrings (`_code_fingerprint`), so editing a comment or a docstring reruns nothing.

Each step's parameters are one `StepSettings` subclass (`idiff_lib.chain.steps.STEP_SETTINGS`):
defaults are the cpu profile, ``idiff_lib/configs/profiles/<notebook stem>.yaml`` overlays the
``paper`` and ``tiny`` profiles (``tiny`` is for the tests), and ``--param`` overrides go on top
(the chain's own folders and profile come from the flags only, `CHAIN_FLAGS`).
Every step's settings are built and validated before the first step starts. Each notebook is
given its folders, the profile and its own ``--param`` values as ``overrides`` (`notebook_params`);
the cell after ``parameters`` calls `notebook_context`, which builds the same settings from them,
applies the step's ``threads`` setting and resolves the default folders.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from idiff_lib.chain import timing
from idiff_lib.chain.context import read_metrics
from idiff_lib.chain.folders import check_run_folders, run_folder, run_lock, supersede_if_stale
from idiff_lib.chain.steps import STEP_SETTINGS
from idiff_lib.core import determinism, layout, paths, storage
from idiff_lib.core.errors import IdiffError, ParameterError, suggest
from idiff_lib.core.step_settings import CHAIN_FLAGS, OVERRIDES_PARAM, StepSettings
from idiff_lib.data.datasets import check_data_folder
from idiff_lib.scoring.worked_pair import resolve_worked_pair

# Library files fingerprinted besides the Python modules (by content).
_CODE_DATA_SUFFIXES = (".json", ".yaml", ".yml")


class StepFailed(IdiffError):
    """A notebook of the chain raised; names the step, the error and the executed copy."""


# --------------------------------------------------------------------------- parameters
def available_steps(notebooks_dir: Path | None = None) -> list[str]:
    """The chain's step names: the stems of ``NN_*.ipynb`` in the notebooks folder, in order."""
    folder = notebooks_dir or paths.NOTEBOOKS_DIR
    return sorted(p.stem for p in folder.glob("[0-9][0-9]_*.ipynb"))


def declared_params(notebook: Path) -> dict[str, dict[str, Any]]:
    """The notebook's ``parameters`` cell as papermill reads it: name -> {"type": name, "default": text}."""
    import papermill  # deferred: heavy

    declared = papermill.inspect_notebook(str(notebook))
    return {name: {"type": spec.get("inferred_type_name"), "default": spec.get("default")} for name, spec in declared.items()}


def settings_class(step: str, registry: Mapping[str, type[StepSettings]] = STEP_SETTINGS) -> type[StepSettings]:
    """The settings class of a step.

    Raises:
        IdiffError: the step has no settings class (a notebook added without one).
    """
    if step not in registry:
        raise IdiffError(f"step {step} has no settings class. fix: add a StepSettings subclass for it to "
                         "STEP_SETTINGS in idiff_lib/chain/steps.py")
    return registry[step]


def check_overrides(overrides: Mapping[str, Any], steps: list[str],
                    registry: Mapping[str, type[StepSettings]] = STEP_SETTINGS) -> None:
    """Refuse an override that no step of `steps` knows, naming the known keys and a close match.

    Raises:
        ParameterError: an unknown key, or one of the chain's own (`CHAIN_FLAGS`: set from the flags).
    """
    known: dict[str, None] = {}
    for step in steps:
        known.update(dict.fromkeys(k for k in settings_class(step, registry).known_keys() if k not in CHAIN_FLAGS))
    for name in overrides:
        if name in CHAIN_FLAGS:
            flag = CHAIN_FLAGS[name]
            detail = " (each step's folder is <out>/<step>)" if name == "step_dir" else ""
            raise ParameterError(f"--param {name}: {name} is set by the chain, from {flag}{detail}. "
                                 f"fix: pass {flag} instead of --param {name}=...")
        if name not in known:
            raise ParameterError(
                f"--param {name}: unknown parameter {name!r} for step(s) {', '.join(steps)}.{suggest(name, known)} "
                f"Known parameters: {', '.join(sorted(known))}."
            )


def own_overrides(step: str, overrides: Mapping[str, Any],
                  registry: Mapping[str, type[StepSettings]] = STEP_SETTINGS) -> dict[str, Any]:
    """The overrides that are settings of this step (the others are for other steps; the chain's own keys are refused
    by `check_overrides`)."""
    own = {f.name for f in dataclasses.fields(settings_class(step, registry))}
    return {k: v for k, v in overrides.items() if k in own}


def step_params(step: str, profile: str, chain_params: Mapping[str, Any], overrides: Mapping[str, Any],
                registry: Mapping[str, type[StepSettings]] = STEP_SETTINGS) -> dict[str, Any]:
    """Every parameter of one step: the chain's folders plus its full settings (defaults, profile, overrides).

    This is what the step's ``params.yaml`` records and its fingerprint hashes; the notebook itself is
    given the folders and its own overrides (`notebook_params`) and builds the same settings.

    Raises:
        ParameterError: a wrongly typed override or one the settings class refuses.
    """
    cls = settings_class(step, registry)
    settings = cls.for_profile(profile, **own_overrides(step, overrides, registry))
    return {**chain_params, **settings.as_dict()}


def notebook_params(step: str, chain_params: Mapping[str, Any], overrides: Mapping[str, Any],
                    registry: Mapping[str, type[StepSettings]] = STEP_SETTINGS) -> dict[str, Any]:
    """What papermill injects into a step's notebook: the chain's folders and profile, and the step's own overrides."""
    return {**chain_params, OVERRIDES_PARAM: own_overrides(step, overrides, registry)}


def resolve_chain(steps: list[str], selected: list[str], profile: str, chain_params: Callable[[str], dict[str, Any]],
                  overrides: Mapping[str, Any],
                  registry: Mapping[str, type[StepSettings]] = STEP_SETTINGS) -> dict[str, dict[str, Any]]:
    """The parameters of every step, all validated before any step runs.

    Raises:
        ParameterError: an override no selected step knows, or a bad value for any step.
    """
    check_overrides(overrides, selected, registry)
    return {step: step_params(step, profile, chain_params(step), overrides, registry) for step in steps}


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


# --------------------------------------------------------------------------- runner side
def _code_fingerprint(root: Path | None = None) -> str:
    """A hash of the library's code (`root`, default the ``idiff_lib`` package).

    Python modules count by their syntax tree without docstrings (`_python_sha256`), so editing a
    comment, a docstring or the layout of a line changes nothing, while any change to the code does;
    the configs (JSON and YAML) count by content.
    """
    pkg = root or Path(__file__).resolve().parents[1]
    files = sorted(p for p in pkg.rglob("*")
                   if p.suffix in (".py", *_CODE_DATA_SUFFIXES) and "__pycache__" not in p.parts and p.is_file())
    return storage.text_sha256("".join(
        f"{p.relative_to(pkg)}:{_python_sha256(p) if p.suffix == '.py' else storage.file_sha256(p)}" for p in files))


def _python_sha256(path: Path) -> str:
    """A hash of a module's syntax tree with its docstrings removed (its content when it does not parse)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return storage.file_sha256(path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:]
    return storage.text_sha256(ast.dump(tree, include_attributes=False))


def _data_fingerprint(data_dir: Path) -> str:
    """A hash of the contents of the data folder's files (JSONL files and images).

    Each file's content hash is cached by its path, size, mtime, ctime and inode
    (``.cache/idiff/data_hashes.json``), so an unchanged folder is not read again; any write to a
    file changes its ctime, so the cached hash is never stale. The fingerprint itself is the content.
    """
    if not data_dir.exists():
        return "missing"
    cache_path = paths.CACHE_DIR / "idiff" / "data_hashes.json"
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    cache = cache if isinstance(cache, dict) else {}
    parts, hashes = [], {}
    for f in sorted(data_dir.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            st = f.stat()
            key = f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
            hashes[key] = cache.get(key) or storage.file_sha256(f)
            parts.append(f"{f.relative_to(data_dir)}:{hashes[key]}")
    prefix = f"{data_dir.resolve()}{os.sep}"  # entries of files here that changed or went are dropped
    kept = {k: v for k, v in cache.items() if not k.startswith(prefix)}
    if {**kept, **hashes} != cache:
        cache = {**kept, **hashes}
        try:
            storage.write_json(cache_path, cache)
        except OSError:
            pass  # only a cache
    return storage.text_sha256("\n".join(parts))


def step_fingerprints(plan: _ChainPlan) -> dict[str, tuple[str, dict[str, str]]]:
    """Every step's fingerprint and its parts (hashes of notebook, parameters, code, data, upstream)."""
    code_fp = _code_fingerprint()
    data_fp = _data_fingerprint(plan.data_dir)
    upstream_fp = ""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for step in plan.steps:
        nb_fp = storage.file_sha256(plan.nb_dir / f"{step}.ipynb")
        fingerprint = storage.text_sha256(json.dumps(
            {"notebook": nb_fp, "params": plan.params[step], "code": code_fp, "data": data_fp,
             "upstream": upstream_fp}, sort_keys=True, default=str))
        params_fp = storage.text_sha256(json.dumps(plan.params[step], sort_keys=True, default=str))
        out[step] = (fingerprint, {"notebook": nb_fp, "params": params_fp, "code": code_fp, "data": data_fp,
                                   "upstream": upstream_fp})
        upstream_fp = fingerprint
    return out


@dataclass
class StepResult:
    """What the chain did with one step."""

    step: str
    status: str  # "ran" | "skipped"
    seconds: float
    step_dir: Path


@dataclass
class _ChainPlan:
    """The resolved chain: folders, the steps to run and every step's parameters."""

    profile: str
    nb_dir: Path
    data_dir: Path
    run_dir: Path
    steps: list[str]
    selected: list[str]
    params: dict[str, dict[str, Any]]  # every step's resolved parameters (recorded, fingerprinted)
    injected: dict[str, dict[str, Any]]  # what each notebook is given (`notebook_params`)


def _plan(profile: str, data_dir: str | Path | None, out: str | Path | None, from_step: str | None,
          only: list[str] | None, overrides: Mapping[str, Any], fig_dir: str | Path | None,
          nb_dir: Path, registry: Mapping[str, type[StepSettings]]) -> _ChainPlan:
    """Check the folders and resolve every step's parameters; nothing runs yet."""
    steps = available_steps(nb_dir)
    if not steps:
        raise IdiffError(f"no notebooks NN_*.ipynb in {nb_dir}")
    selected = _select(steps, from_step, only)
    data = Path(data_dir or paths.DEMO_DIR).expanduser().resolve()
    if not data.exists():
        raise ParameterError(f"--data {data} does not exist. fix: give a folder holding train_sft.jsonl etc. "
                             "(`idiff data build-demo` rebuilds data/demo)")
    run_dir = run_folder(profile, out)
    figures = Path(fig_dir or paths.FIGURES_DIR).expanduser().resolve()
    check_run_folders(data, run_dir, figures)
    if layout.ANSWER_STEP in selected:
        check_data_folder(data)  # a missing split stops step 02: say so before anything runs

    def chain_params(step: str) -> dict[str, Any]:
        return {"profile": profile, "data_dir": str(data), "run_dir": str(run_dir),
                "step_dir": str(layout.step_dir(run_dir, step)), "fig_dir": str(figures)}

    params = resolve_chain(steps, selected, profile, chain_params, overrides, registry)
    if overrides.get("worked_pair"):  # a worked-pair id not in the data: say so before any step runs
        resolve_worked_pair(data, str(overrides["worked_pair"]))
    injected = {step: notebook_params(step, chain_params(step), overrides, registry) for step in steps}
    return _ChainPlan(profile, nb_dir, data, run_dir, steps, selected, params, injected)


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
    registry: Mapping[str, type[StepSettings]] = STEP_SETTINGS,
) -> list[StepResult]:
    """Execute the chain's notebooks in order, skipping steps that are up to date.

    Every step's parameters are resolved and validated before the first step starts.

    Args:
        profile: "cpu" (small, runs here), "paper" (real backbones and MLLM) or "tiny" (tests).
        data_dir: the data folder (default ``data/demo``).
        out: the run folder (default ``runs/<profile>``).
        from_step / only: a step name or its two-digit prefix to start from / to run alone.
        overrides: parameter values for every step that knows them (``--param k=v``).
        force: rerun steps even when up to date.
        registry: step name -> settings class (the tests pass their own).

    Raises:
        ParameterError: an unknown step, folder or parameter, or a bad value, before anything runs; or
            another ``idiff run`` holds the run folder's lock.
        StepFailed: a notebook raised.
    """
    plan = _plan(profile, data_dir, out, from_step, only, dict(overrides or {}), fig_dir,
                 notebooks_dir or paths.NOTEBOOKS_DIR, registry)
    with run_lock(plan.run_dir):
        fingerprints = step_fingerprints(plan)
        results: list[StepResult] = []
        t_chain = time.monotonic()
        for index, step in enumerate(plan.steps, start=1):
            if step in plan.selected:
                prefix = f"[{index}/{len(plan.steps)}] {step}"
                results.append(_run_step(plan.nb_dir / f"{step}.ipynb", plan, fingerprints[step], prefix, force,
                                         log, t_chain))
    return results


def _run_step(nb: Path, plan: _ChainPlan, fingerprint_parts: tuple[str, dict[str, str]], prefix: str, force: bool,
              log: Callable[[str], None], t_chain: float) -> StepResult:
    """Run one step, or skip it when its marker holds the same fingerprint."""
    step = nb.stem
    fingerprint, parts = fingerprint_parts
    step_dir = layout.step_dir(plan.run_dir, step)
    marker = step_dir / layout.STEP_MARKER
    if not force and _up_to_date(marker, fingerprint):
        log(f"{prefix}: up to date, skipped  (total {format_seconds(time.monotonic() - t_chain)})")
        return StepResult(step, "skipped", 0.0, step_dir)
    kept = supersede_if_stale(step_dir, fingerprint, plan.run_dir)
    if kept is not None:
        log(f"{prefix}: outputs made with other parameters, code or data moved aside to {kept}")
    log(f"{prefix}: running ...")
    storage.write_json(step_dir / layout.STARTED_MARKER, {"fingerprint": fingerprint, "parts": parts})
    row = timing.timed(plan.run_dir, step, lambda: _execute(nb, step_dir, plan.params[step], plan.injected[step]))
    seconds = row["wall_s"]
    storage.write_json(marker, {"step": step, "fingerprint": fingerprint, "profile": plan.profile,
                                "seconds": seconds, "cpu_seconds": row["cpu_s"],
                                "peak_rss_mib": row["peak_rss_mib"], "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                "parts": parts})
    log(f"{prefix}: done in {format_seconds(seconds)}  (total {format_seconds(time.monotonic() - t_chain)})")
    return StepResult(step, "ran", seconds, step_dir)


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
    """The step finished with this fingerprint and its ``metrics.json`` is readable (a damaged one reruns it)."""
    metrics = marker.parent / layout.METRICS_FILE
    if not marker.exists() or not metrics.exists() or read_metrics(metrics)[0] is None:
        return False
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return isinstance(recorded, dict) and recorded.get("fingerprint") == fingerprint


def _execute(nb: Path, step_dir: Path, params: dict[str, Any], injected: dict[str, Any]) -> None:
    """Execute one notebook with papermill; its kernel's own messages go to ``kernel.log`` in the step folder.

    `params` (every resolved parameter) is written to ``params.yaml``; the notebook is given `injected`.

    The kernel writes its log (a warning at every start; when Ctrl-C stops the chain mid-cell, a
    ``zmq`` traceback while it is shut down) to its stderr, which would otherwise be the terminal's.
    """
    from nbclient.exceptions import DeadKernelError  # deferred: heavy
    from papermill.exceptions import PapermillExecutionError  # deferred: heavy
    import papermill  # deferred: heavy

    step_dir.mkdir(parents=True, exist_ok=True)
    for stale in (layout.STEP_MARKER, layout.METRICS_FILE):
        (step_dir / stale).unlink(missing_ok=True)
    storage.write_yaml(step_dir / layout.PARAMS_FILE, params)
    executed = step_dir / layout.EXECUTED_NOTEBOOK
    try:
        papermill.execute_notebook(
            str(nb), str(executed), parameters=injected, kernel_name="python3",
            cwd=str(paths.PROJ_ROOT), progress_bar=False, log_output=False,
            kernel_manager_class=_logged_kernel_manager(step_dir / layout.KERNEL_LOG,
                                                        determinism.kernel_env(params.get("threads"))),
        )
    except PapermillExecutionError as exc:
        raise StepFailed(
            f"step {nb.stem} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
            f"  the executed notebook, with the traceback, is {executed}"
        ) from None
    except DeadKernelError:
        raise StepFailed(f"step {nb.stem}: the notebook's kernel died (out of memory, or a crash in native code); "
                         f"its last messages are in {step_dir / layout.KERNEL_LOG}, the executed notebook is "
                         f"{executed}") from None
    if not (step_dir / layout.METRICS_FILE).exists():
        raise StepFailed(f"step {nb.stem} finished without writing {step_dir / layout.METRICS_FILE} "
                         "(the notebook must end with context.save_metrics(ctx.step_dir, ...))")


def _logged_kernel_manager(log: Path, env: Mapping[str, str]) -> type:
    """A jupyter kernel manager class whose kernels get `env` and write their stderr to `log` (appended), not ours."""
    from jupyter_client.manager import AsyncKernelManager  # deferred: heavy

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            with open(log, "ab") as stderr:  # noqa: ASYNC230 - once per kernel start; the kernel keeps its own copy
                env_out = {**kw.get("env", os.environ), **env}
                await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": stderr, "env": env_out})

    return LoggedKernelManager


def format_seconds(seconds: float) -> str:
    """``12.3s`` under a minute, ``4m05s`` above."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def prepare_notebooks(out: str | Path, profile: str = "tiny", data_dir: str | Path | None = None,
                      overrides: dict[str, Any] | None = None, notebooks_dir: Path | None = None,
                      registry: Mapping[str, type[StepSettings]] = STEP_SETTINGS) -> list[Path]:
    """Write copies of the notebooks with the profile's parameters injected (for ``pytest --nbval-lax``).

    All copies share one run folder ``out/run``, so executed in order they form a chain. Every
    step's parameters are validated before the first copy is written.
    """
    import papermill  # deferred: heavy

    out = Path(out).resolve()
    nb_dir = notebooks_dir or paths.NOTEBOOKS_DIR
    run_dir = out / "run"
    data = Path(data_dir or paths.DEMO_DIR).resolve()
    check_run_folders(data, out, out / "figures")
    steps = available_steps(nb_dir)

    def chain_params(step: str) -> dict[str, Any]:
        return {"profile": profile, "data_dir": str(data), "run_dir": str(run_dir),
                "step_dir": str(layout.step_dir(run_dir, step)), "fig_dir": str(out / "figures")}

    overrides = dict(overrides or {})
    resolve_chain(steps, steps, profile, chain_params, overrides, registry)  # every step validated first
    written = []
    for step in steps:
        target = out / f"{step}.ipynb"
        out.mkdir(parents=True, exist_ok=True)
        injected = notebook_params(step, chain_params(step), overrides, registry)
        papermill.execute_notebook(str(nb_dir / f"{step}.ipynb"), str(target), parameters=injected,
                                   prepare_only=True, kernel_name="python3", progress_bar=False)
        written.append(target)
    return written
