"""Checks on the project itself: dependency lists agree, notebooks are stripped and well-formed."""

import ast
import json
import re
import tomllib

import nbformat
import pytest
import yaml

from idiff_lib.core import layout, paths
from idiff_lib.chain import runner
from idiff_lib.core import step_settings

ROOT = paths.PROJ_ROOT
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[;]", spec, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(pip) == sorted(deps)
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"] if isinstance(d, str))


def test_required_packages_are_declared():
    deps = {_name(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for pkg in ("jupyterlab", "papermill", "torch", "transformers", "peft", "timm", "pyiqa", "matplotlib",
                "seaborn", "scikit-learn", "nbval", "opencv-python", "opencv-python-headless", "ipywidgets"):
        assert pkg in deps, pkg


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "01_explore_pairs.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    ids = [c.get("id") for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]  # as stored: nbformat fills gaps
    assert all(ids) and len(set(ids)) == len(ids), "every cell needs its own id (else nbformat warns in every run)"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    params = code[0]
    assert "parameters" in params.metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    annotated = [n.target.id for n in ast.parse(params.source).body if isinstance(n, ast.AnnAssign)]
    assert annotated, "parameters must carry type annotations"
    assert sorted(runner.declared_params(path)) == sorted(annotated), \
        "papermill cannot read some parameter lines (a '=' inside a trailing comment breaks its parser)"
    for line in params.source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert "  # " in line, f"parameter without a comment saying why: {line}"
    assert annotated == list(step_settings.CELL_PARAMS), "the cell holds the chain's parameters and overrides only"
    source = "\n".join(c.source for c in code)
    step = re.search(r"notebook_context\(globals\(\), (layout\.\w+|\"[^\"]+\")\)", source)
    assert step, "the cell after the parameters must call context.notebook_context(globals(), <step>)"
    name = step.group(1)
    assert (getattr(layout, name.split(".", 1)[1]) if name.startswith("layout.") else name.strip('"')) == path.stem
    assert "save_metrics(" in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_chain_injects_only_declared_parameters(path):
    declared = runner.declared_params(path)
    folders = {name: "" for name in step_settings.COMMON_PARAMS}
    assert set(runner.notebook_params(path.stem, folders, {"worked_pair": "x"})) == set(declared)
