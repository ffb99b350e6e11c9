"""Reading the YAML a user writes (scenario and study files, `--set` values), and finding shipped ones.

Two departures from PyYAML's safe loader, both about what a user means:
- a key given twice in one mapping is an error naming the line (PyYAML silently keeps the last);
- `1e6`, `1E-3`, `5e+2` are numbers (YAML 1.1 wants a dot and a signed exponent, `1.0e+6`, and
  reads the rest as strings).

Scenarios and studies ship inside the package (simcode/data/) so that `simcode study
straggler_sweep` and `simcode run scenarios/spread3.yaml` work from any directory: a name or path
that does not exist where the user is falls back to the shipped file of that name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from simcode.errors import BadInput

DATA_DIR = Path(__file__).resolve().parent / "data"
YAML_SUFFIXES = (".yaml", ".yml")


class DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping."""


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with duplicate keys refused and exponent-only floats read as numbers."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` may legitimately override what it merges
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = key in first_line
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if seen:
                    raise DuplicateKey(None, None, f"key {key!r} given twice (first on line {first_line[key]}); "
                                                   "allowed: each key once per mapping", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader
    except RecursionError:  # PyYAML recurses once per level of nesting
        raise yaml.MarkedYAMLError(problem="nested too deeply for Python to read") from None


def yaml_error_message(exc: yaml.YAMLError) -> str:
    """'line N: what is wrong' for a YAML error (one line)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark else ""
    if isinstance(exc, DuplicateKey):
        return f"{where}{exc.problem}"
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "not valid YAML"
    return f"{where}malformed YAML ({problem})"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path` (a leading UTF-8 byte-order mark ignored; an empty file is an empty
    mapping: the defaults), or BadInput naming the file."""
    path = Path(path)
    if not path.is_file():
        what = ("is a directory, not a YAML file" if path.is_dir() else
                "is not a regular file (a device, a pipe or a socket); allowed: a YAML file" if path.exists()
                else "file not found")
        raise BadInput("", what, file=str(path))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # Windows editors start a file with one
    except UnicodeDecodeError as exc:
        raise BadInput("", f"not a text file (byte {exc.start} is not UTF-8); allowed: a UTF-8 YAML file",
                       file=str(path)) from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise BadInput("", yaml_error_message(exc), file=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput("", f"expected a mapping of keys, got {type(data).__name__}", file=str(path))
    return data


def shipped_names(kind: str) -> list[str]:
    """Names of the shipped files of `kind` ('scenarios' or 'studies')."""
    return sorted(p.stem for p in (DATA_DIR / kind).glob("*.yaml"))


def shipped_path(text: str | Path, kind: str) -> Path | None:
    """The shipped file `text` names, if any: `NAME`, `NAME.yaml` or `<kind>/NAME.yaml`."""
    path = Path(text)
    if path.parent not in (Path("."), Path(kind)) or path.suffix not in ("", *YAML_SUFFIXES):
        return None
    candidate = DATA_DIR / kind / f"{path.stem if path.suffix else path.name}.yaml"
    return candidate if candidate.is_file() else None


def resolve_scenario_path(text: str | Path) -> Path:
    """`text` when it exists, else the shipped scenario it names (e.g. `spread3` or
    `scenarios/spread3.yaml` from any directory), else BadInput listing the shipped ones."""
    path = Path(text)
    if path.exists():
        return path
    found = shipped_path(path, "scenarios")
    if found is not None:
        return found
    raise BadInput("", f"file not found; allowed: a scenario file, or a shipped scenario: "
                       f"{', '.join(shipped_names('scenarios'))}", file=str(path))
