"""Typed scenario configuration, loaded from YAML with one-line errors.

A scenario file has the sections of DESIGN.md (`env`, `maddpg`, `cluster`, `code`, `delay`, `cost`,
`run`) plus `seed`. Every key has a default, so a scenario file only says what differs. The
`code` and `delay` sections carry their scheme's own parameters beside `name`; those are checked
by `simcode.codes.make_code` / `simcode.delays.make_delay` when the run is built (see
`validate_scenario`).

`--set key=value` overrides reach every key: `maddpg.lr=0.001`, `code.name=ldpc`, `code.dv=2`.
Values are parsed as YAML, so `delay.k=2` is an int and `cluster.timeout=null` is None.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simcode.errors import BadInput


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EnvConfig(_Section):
    scenario: Literal["simple_spread", "simple_tag", "simple_adversary", "simple_push"] = "simple_spread"
    n_agents: int = Field(3, ge=1, description="simple_spread: agents; simple_adversary: good agents")
    max_cycles: int = Field(25, ge=1)
    n_adversaries: int = Field(3, ge=1, description="simple_tag: predators")
    n_good: int = Field(1, ge=1, description="simple_tag: prey")
    n_obstacles: int = Field(2, ge=0, description="simple_tag: obstacles")
    local_ratio: float = Field(0.5, ge=0, le=1, description="simple_spread: weight of local reward")


class MaddpgConfig(_Section):
    lr: float = Field(0.01, gt=0)
    gamma: float = Field(0.95, ge=0, le=1)
    tau: float = Field(0.01, gt=0, le=1)
    batch_size: int = Field(1024, ge=1)
    hidden: int = Field(64, ge=1)
    steps_per_iteration: int = Field(100, ge=1)
    grad_clip: float = Field(0.5, gt=0)
    policy_reg: float = Field(1e-3, ge=0)
    buffer_size: int = Field(1_000_000, ge=1)
    learning_starts: int | None = Field(
        None, ge=0, description="transitions before training; default batch_size * max_cycles"
    )
    good_policy: Literal["maddpg", "ddpg"] = "maddpg"
    adv_policy: Literal["maddpg", "ddpg"] = "maddpg"


class NetworkConfig(_Section):
    latency: float = Field(0.0005, ge=0, description="seconds per message")
    bandwidth: float = Field(1.25e9, gt=0, description="bytes per second")


class ClusterConfig(_Section):
    n_learners: int = Field(5, ge=1)
    network: NetworkConfig = NetworkConfig()
    on_decode: Literal["cancel", "let_finish"] = "cancel"
    timeout: float | None = Field(
        None, gt=0, description="seconds after which missing work is re-sent to learners that answered"
    )


class CodeConfig(BaseModel):
    """`name` is a registered scheme (simcode.codes.CODES) or `centralized`; other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    name: str = "mds"

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DelayConfig(BaseModel):
    """`name` is a registered delay model (simcode.delays.DELAYS); other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    name: str = "none"
    mode: Literal["add", "scale"] = "add"

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CostConfig(_Section):
    model: Literal["fixed", "flops", "measured"] = "fixed"
    update: float = Field(0.01, ge=0, description="fixed: seconds per agent update")
    env_step: float = Field(0.0005, ge=0, description="fixed/flops: seconds per environment step")
    decode: float = Field(1e-9, ge=0, description="seconds per decoded value (fixed and flops)")
    flops_rate: float = Field(5e9, gt=0, description="flops: floating-point operations per second")


class RunConfig(_Section):
    iterations: int = Field(200, ge=1)
    workload: Literal["maddpg", "timing"] = "maddpg"
    checkpoint_every: int = Field(0, ge=0, description="train: iterations between checkpoints (0: only at the end)")
    log_every: int = Field(1, ge=1)


class Scenario(_Section):
    seed: int = Field(0, ge=0)
    env: EnvConfig = EnvConfig()
    maddpg: MaddpgConfig = MaddpgConfig()
    cluster: ClusterConfig = ClusterConfig()
    code: CodeConfig = CodeConfig()
    delay: DelayConfig = DelayConfig()
    cost: CostConfig = CostConfig()
    run: RunConfig = RunConfig()

    @field_validator("code", "delay", mode="before")
    @classmethod
    def _name_is_text(cls, value: Any) -> Any:
        if isinstance(value, dict) and "name" in value and not isinstance(value["name"], str):
            raise ValueError("name must be a string")
        return value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def digest(self) -> str:
        """A short stable hash of the fully resolved scenario (for provenance)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def n_agents(self) -> int:
        return n_agents_of(self.env)

    @property
    def learning_starts(self) -> int:
        m = self.maddpg
        return m.learning_starts if m.learning_starts is not None else m.batch_size * self.env.max_cycles


# --------------------------------------------------------------------------- loading

def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path`, or BadInput naming the file."""
    path = Path(path)
    if not path.is_file():
        raise BadInput("", "file not found", file=str(path))
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise BadInput("", f"{where}malformed YAML ({problem})", file=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput("", f"expected a mapping of keys, got {type(data).__name__}", file=str(path))
    return data


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """`["a.b=1", "c=x"]` -> {"a.b": 1, "c": "x"}; values parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise BadInput("--set", f"{item!r} is not key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise BadInput("--set", f"{item!r} has an empty key")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            out[key] = text
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `data['a']['b'] = value` for key 'a.b', creating mappings on the way."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def get_dotted(data: dict[str, Any], key: str, default: Any = None) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for key, value in overrides.items():
        # Changing the scheme or delay model drops the old one's parameters.
        if key in ("code.name", "delay.name") and get_dotted(data, key) != value:
            section = key.split(".")[0]
            kept = {"mode": data[section]["mode"]} if section == "delay" and "mode" in data.get(section, {}) else {}
            data[section] = kept
        set_dotted(data, key, value)
    return data


def _allowed_keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _pydantic_to_bad_input(exc: ValidationError, file: str | None) -> BadInput:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = err["loc"][:-1]
        model: type[BaseModel] = Scenario
        for part in parent:
            model = model.model_fields[str(part)].annotation  # type: ignore[assignment]
        return BadInput(loc, f"unknown key; allowed: {_allowed_keys(model)}", file)
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return BadInput(loc, f"{err['input']!r} is not allowed; allowed: {expected}", file)
    return BadInput(loc, f"{err['msg']} (got {err.get('input')!r})", file)


def scenario_from_dict(data: dict[str, Any], file: str | None = None) -> Scenario:
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_to_bad_input(exc, file) from None
    validate_scenario(scenario, file)
    return scenario


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a scenario file, apply `--set` overrides and validate everything, or raise BadInput."""
    data = apply_overrides(read_yaml(path), overrides or {})
    trace_file = get_dotted(data, "delay.file")
    if isinstance(trace_file, str) and not Path(trace_file).is_absolute():
        beside = Path(path).parent / trace_file
        if beside.exists():  # a measured-delay file named relative to the scenario that uses it
            set_dotted(data, "delay.file", str(beside.resolve()))
    return scenario_from_dict(data, str(path))


def validate_scenario(scenario: Scenario, file: str | None = None) -> None:
    """Cross-section checks: the scheme and delay model exist and accept their parameters."""
    # Imported here: config sits below the leaves, and only this check needs them.
    from simcode.codes import CODES, make_code
    from simcode.delays import DELAYS, make_delay

    if scenario.cost.model == "measured" and scenario.run.workload != "maddpg":
        raise BadInput("cost.model", "measured times real computation; allowed with run.workload: maddpg", file)
    m = scenario.n_agents
    n = scenario.cluster.n_learners
    code = scenario.code
    if code.name != "centralized":
        if code.name not in CODES:
            allowed = ", ".join(sorted(CODES) + ["centralized"])
            raise BadInput("code.name", f"unknown scheme {code.name!r}; allowed: {allowed}", file)
        try:
            make_code(code.name, n_agents=m, n_learners=n, seed=scenario.seed, **code.params())
        except BadInput as exc:
            raise exc.within("code", file) from None
    delay = scenario.delay
    if delay.name not in DELAYS:
        allowed = ", ".join(sorted(DELAYS))
        raise BadInput("delay.name", f"unknown delay model {delay.name!r}; allowed: {allowed}", file)
    try:
        make_delay(delay.name, n_learners=n, mode=delay.mode, **delay.params())
    except BadInput as exc:
        raise exc.within("delay", file) from None


def n_agents_of(env: EnvConfig) -> int:
    """How many learning agents the environment has."""
    if env.scenario == "simple_spread":
        return env.n_agents
    if env.scenario == "simple_tag":
        return env.n_adversaries + env.n_good
    if env.scenario == "simple_adversary":
        return env.n_agents + 1
    return 2  # simple_push: one adversary, one good agent

