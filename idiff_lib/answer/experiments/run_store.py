"""A trained Answer run on disk: a plain JSON spec per member plus its weights, safe to open.

``<step folder>/ensemble.json`` (`layout.ENSEMBLE_FILE`) lists the members and the ensembler:

- a network member: its backbone and, per routed model ("" generalist, "person", "scene"), the
  member's settings (`MemberConfig`) and its weights file (the member's ``best.pt``, a state dict
  read with ``torch.load(..., weights_only=True)``);
- the feature member: its class name, settings, the feature table it reads and its
  ``skops.io`` file (loaded with an explicit list of trusted types);
- a head member (the cache-first cpu profile, `idiff_lib.answer.train.head_member`): its frozen backbone,
  its input and its head's arrays in a safetensors file.

Nothing is looked up by module path and no object is rebuilt from a class name stored in a file,
so a run outlives moving a class and a crafted file cannot run code. A folder written by the
older layout (a member serialised whole as ``.pkl``, a spec without these fields) is refused,
unread, with a `DataError` that says to retrain step 02.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from idiff_lib.answer.model.checkpoints import RETRAIN_HINT, load_weights
from idiff_lib.answer.experiments.ensemble import Ensemble, FeatureMemberAdapter, NetworkMember, TableBuilder
from idiff_lib.answer.experiments.ensemblers import Ensembler, make_ensembler
from idiff_lib.answer.train.feature_member import FeatureMember
from idiff_lib.answer.train.head_member import HeadMember
from idiff_lib.answer.train.training import BEST_CHECKPOINT, MEMBERS_DIR, model_from_checkpoint
from idiff_lib.core import layout, storage
from idiff_lib.core.errors import DataError, ParameterError
from idiff_lib.features.table import feature_table

# Version of the spec; a spec without it was written by the pickling layout before it.
RUN_FORMAT = 2
FEATURE_MEMBER_FILE = MEMBERS_DIR + "/{name}.skops"  # beside the network members' folders
HEAD_MEMBER_FILE = MEMBERS_DIR + "/{name}.safetensors"  # a head member's arrays
# The feature-member classes a spec may name (looked up here, never imported by name).
FEATURE_MEMBER_CLASSES: dict[str, type[FeatureMember]] = {"FeatureMember": FeatureMember}


def feature_table_builder(name: str) -> TableBuilder:
    """The function that builds a saved feature member's table, by the name its spec records.

    Raises:
        DataError: for a name that is not one of the known table builders.
    """
    builders: dict[str, TableBuilder] = {"feature_table": feature_table}
    if name not in builders:
        raise DataError(None, f"unknown feature table {name!r} in a saved run; known: {', '.join(builders)}", RETRAIN_HINT)
    return builders[name]


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def _network_spec(member: NetworkMember, step_dir: Path) -> dict[str, Any]:
    models = {}
    for key, model in member.models.items():
        if key not in member.dirs:
            raise ParameterError(f"member {member.name!r}: model {key or 'generalist'!r} has no folder to save from; "
                                 "fix: build the member with ensemble.network_member(name, dirs)")
        weights = Path(member.dirs[key]) / BEST_CHECKPOINT
        models[key] = {"weights": _relative(weights, step_dir), "settings": model.cfg.to_dict()}
    backbone = next(iter(member.models.values())).cfg.backbone
    return {"name": member.name, "kind": "network", "backbone": backbone, "models": models}


def _feature_spec(member: FeatureMemberAdapter, step_dir: Path) -> dict[str, Any]:
    target = step_dir / FEATURE_MEMBER_FILE.format(name=member.name)
    member.member.save(target)
    return {"name": member.name, "kind": "feature_member", "class": type(member.member).__name__,
            "weights": _relative(target, step_dir), "settings": member.member.settings(), "table": member.table_name}


def _head_spec(member: HeadMember, step_dir: Path) -> dict[str, Any]:
    target = step_dir / HEAD_MEMBER_FILE.format(name=member.name)
    member.save(target)
    return member.spec_dict(_relative(target, step_dir))


def _member_spec(member: NetworkMember | FeatureMemberAdapter | HeadMember, step_dir: Path) -> dict[str, Any]:
    if isinstance(member, NetworkMember):
        return _network_spec(member, step_dir)
    if isinstance(member, HeadMember):
        return _head_spec(member, step_dir)
    return _feature_spec(member, step_dir)


def save_answer_run(step_dir: str | Path, members: Sequence[NetworkMember | FeatureMemberAdapter | HeadMember],
                    ensembler: Ensembler) -> Path:
    """Write ``ensemble.json`` (and the feature member's skops file) so `load_answer_run` / the CLI can predict.

    Network members keep their weights where training left them (``members/<name>/best.pt``).
    """
    step_dir = Path(step_dir)
    specs = [_member_spec(m, step_dir) for m in members]
    spec = {"format": RUN_FORMAT, "members": specs, "ensembler": {"name": ensembler.name, "state": ensembler.state()}}
    return storage.write_json(step_dir / layout.ENSEMBLE_FILE, spec)


def _find_spec(run_dir: Path) -> Path:
    for folder in (run_dir, layout.step_dir(run_dir, layout.ANSWER_STEP)):
        if (folder / layout.ENSEMBLE_FILE).is_file():
            return folder / layout.ENSEMBLE_FILE
        if (folder / layout.ENSEMBLE_FILE).exists():
            raise DataError(folder / layout.ENSEMBLE_FILE, "is not a file", RETRAIN_HINT)
    raise DataError(run_dir / layout.ENSEMBLE_FILE, "no trained ensemble here",
                    f"pass --run <run folder> or <run folder>/{layout.ANSWER_STEP} after running notebook 02")


def _old_layout(path: Path, problem: str) -> DataError:
    run = Path(path).resolve().parent.parent  # <run>/02_train_answer_model/ensemble.json
    return DataError(path, f"written by an older version of the Answer Model ({problem}); it is not opened",
                     RETRAIN_HINT.replace("<run folder>", str(run)))


def _check_spec(path: Path, spec: Any) -> None:
    """Refuse a spec of the old layout before anything it names is read."""
    members = spec.get("members") if isinstance(spec, dict) else None
    for m in members if isinstance(members, list) else []:
        if isinstance(m, dict) and (m.get("kind") == "pickle" or str(m.get("path", "")).endswith(".pkl")):
            raise _old_layout(path, f"member {m.get('name')!r} is a serialised object, {m.get('path')}")
    if not isinstance(spec, dict) or spec.get("format") != RUN_FORMAT or not isinstance(spec.get("members"), list):
        raise _old_layout(path, f"no 'format': {RUN_FORMAT} spec")
    if not spec["members"]:
        raise DataError(path, "lists no members", RETRAIN_HINT)
    ens = spec.get("ensembler")
    if not (isinstance(ens, dict) and isinstance(ens.get("name"), str) and isinstance(ens.get("state") or {}, dict)):
        raise DataError(path, "'ensembler' must be an object with a 'name' and a 'state' object", RETRAIN_HINT)
    need = {"network": ("name", "backbone", "models"), "feature_member": ("name", "class", "weights", "settings", "table"),
            "head": ("name", "weights", "input", "backbone")}
    for m in spec["members"]:
        kind = m.get("kind") if isinstance(m, dict) else None
        if kind not in need:
            raise _old_layout(path, f"a member of kind {kind!r}")
        missing = [k for k in need[kind] if k not in m]
        if missing:
            raise _old_layout(path, f"member {m.get('name')!r} lacks {', '.join(missing)}")
        if kind == "network" and not (isinstance(m["models"], dict) and m["models"] and all(
                isinstance(v, dict) and {"weights", "settings"} <= set(v) for v in m["models"].values())):
            raise _old_layout(path, f"member {m['name']!r} lacks weights/settings per model")
        _check_types(path, m)


def _check_types(path: Path, member: dict[str, Any]) -> None:
    """Refuse a member entry whose fields have the wrong JSON types (a hand-edited or damaged spec)."""
    if member["kind"] == "head":
        if not (isinstance(member.get("weights"), str) and member["weights"] and isinstance(member.get("backbone"), dict)
                and isinstance(member["backbone"].get("backbone"), str)):
            raise DataError(path, f"member {member.get('name')!r}: 'weights' must be a file name and 'backbone' an "
                            "object naming the backbone", RETRAIN_HINT)
        return
    files = [member.get("weights")] if member["kind"] == "feature_member" else \
        [v["weights"] for v in member["models"].values()]
    settings = [member.get("settings")] if member["kind"] == "feature_member" else \
        [v["settings"] for v in member["models"].values()]
    if not all(isinstance(f, str) and f for f in files) or not all(isinstance(v, dict) for v in settings):
        raise DataError(path, f"member {member.get('name')!r}: each 'weights' must be a file name and each "
                        "'settings' an object", RETRAIN_HINT)


def _load_network(spec: dict[str, Any], folder: Path, device: str | None) -> NetworkMember:
    models, dirs = {}, {}
    for key, model_spec in spec["models"].items():
        weights = folder / model_spec["weights"]
        state = load_weights(weights)
        if "model" not in state:
            raise DataError(weights, "holds no 'model' state dict", RETRAIN_HINT)
        try:
            models[key] = model_from_checkpoint({"config": model_spec["settings"], "model": state["model"]}, device)[1]
        except RuntimeError as err:  # load_state_dict: the weights do not fit the network the settings describe
            raise DataError(weights, f"does not fit the settings in {layout.ENSEMBLE_FILE} "
                            f"({str(err).strip().splitlines()[0][:200]})", RETRAIN_HINT) from None
        except ParameterError as err:  # a setting the member does not know, or of the wrong type
            raise DataError(folder / layout.ENSEMBLE_FILE, f"member {spec['name']!r}: {err}", RETRAIN_HINT) from None
        dirs[key] = str(weights.parent)
    return NetworkMember(spec["name"], models, dirs)


def _load_feature(spec: dict[str, Any], folder: Path, path: Path) -> FeatureMemberAdapter:
    cls = FEATURE_MEMBER_CLASSES.get(spec["class"])
    if cls is None:
        raise DataError(path, f"unknown feature member class {spec['class']!r}; known: {', '.join(FEATURE_MEMBER_CLASSES)}",
                        RETRAIN_HINT)
    member = cls.load(folder / spec["weights"])
    if member.settings() != spec["settings"]:
        raise DataError(folder / spec["weights"], f"settings {member.settings()} differ from the spec's {spec['settings']}",
                        RETRAIN_HINT)
    return FeatureMemberAdapter(member, feature_table_builder(spec["table"]), spec["name"], spec["table"])


def _load_member(spec: dict[str, Any], folder: Path, path: Path,
                 device: str | None) -> NetworkMember | FeatureMemberAdapter | HeadMember:
    if spec["kind"] == "network":
        return _load_network(spec, folder, device)
    if spec["kind"] == "head":
        try:
            return HeadMember.load(spec, folder / spec["weights"])
        except ParameterError as err:  # an unknown input or an evidence member without its heads
            raise DataError(path, f"member {spec['name']!r}: {err}", RETRAIN_HINT) from None
    return _load_feature(spec, folder, path)


def load_answer_run(run_dir: str | Path, device: str | None = None) -> Ensemble:
    """The ensemble of a notebook-02 step folder, or of a chain run folder that holds one.

    Raises:
        DataError: when no ``ensemble.json`` is found, when it was written by the old (pickling)
            layout, or when a weights file is missing or unreadable (naming the file).
    """
    path = _find_spec(Path(run_dir))
    folder = path.parent
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err.msg}, line {err.lineno})", RETRAIN_HINT, line=err.lineno) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot be read ({type(err).__name__}: {err})", RETRAIN_HINT) from None
    _check_spec(path, spec)
    members: list[NetworkMember | FeatureMemberAdapter | HeadMember] = [_load_member(m, folder, path, device)
                                                                       for m in spec["members"]]
    ensembler = make_ensembler(spec["ensembler"]["name"]).load_state(spec["ensembler"].get("state") or {})
    return Ensemble(members, ensembler, folder)
