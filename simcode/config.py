"""Typed scenario configuration, loaded from YAML with one-line errors.

A scenario file has the sections of DESIGN.md (`env`, `maddpg`, `cluster`, `code`, `delay`, `cost`,
`run`) plus `seed`. Every key has a default, so a scenario file only says what differs. The
`code` and `delay` sections carry their scheme's own parameters beside `name`, typed by the scheme's
`Params` (simcode.sections); what depends on the sizes is checked by building the code and delay
model once (`validate_scenario`).

`--set key=value` overrides reach every key: `maddpg.lr=0.001`, `code.name=ldpc`, `code.dv=2`.
Values are parsed as YAML, so `delay.k=2` is an int and `cluster.timeout=null` is None.

Numbers are strict: a boolean is not a number (`run.iterations: true` is an error, not 1), a whole
float is taken for an integer (`maddpg.buffer_size: 1e6`), an integer for a float (`maddpg.lr: 1`),
and nothing may be infinite or NaN. Every number has bounds; counts and sizes are further limited by
an estimate of the memory they need (simcode.memory). Every mapping rejects unknown keys, and a key
given twice in one mapping of a YAML file is an error.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from simcode import sections
from simcode.codes import CENTRALIZED
from simcode.errors import BadInput
from simcode.mpe_scenarios import MPE_SCENARIOS
from simcode.params import MAX_COUNT, MAX_RATE, MAX_SECONDS, MAX_SEED, MAX_SIZE, Bool, Float, Int, first_error, problem
from simcode.sections import CodeConfig, DelayConfig
from simcode.yamlfiles import DuplicateKey, parse_yaml, read_yaml, resolve_scenario_path

__all__ = ["Scenario", "load_scenario", "parse_set", "read_yaml", "scenario_from_dict"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# The mpe2 scenarios simcode knows (simcode.mpe_scenarios: one entry each).
ScenarioName = Literal[tuple(MPE_SCENARIOS)]  # type: ignore[valid-type]


class EnvConfig(_Section):
    scenario: ScenarioName = "simple_spread"
    n_agents: Int = Field(3, ge=1, le=MAX_COUNT, description="simple_spread: agents; simple_adversary: good agents")
    max_cycles: Int = Field(25, ge=1, le=MAX_SIZE)
    n_adversaries: Int = Field(3, ge=1, le=MAX_COUNT, description="simple_tag: predators; simple_world_comm: "
                               "adversaries, their leader included")
    n_good: Int = Field(1, ge=1, le=MAX_COUNT, description="simple_tag: prey; simple_world_comm: good agents")
    n_obstacles: Int = Field(2, ge=0, le=MAX_COUNT, description="simple_tag, simple_world_comm: obstacles")
    n_food: Int = Field(2, ge=1, le=MAX_COUNT, description="simple_world_comm: food landmarks")
    n_forests: Int = Field(2, ge=0, le=MAX_COUNT, description="simple_world_comm: forests (hiding places)")
    local_ratio: Float = Field(0.5, ge=0, le=1, description="simple_spread, simple_reference: weight of local reward")
    # What each agent gives mpe2: its Gumbel-softmax vector as a continuous action (the reference's
    # interface), or the vector's argmax as a discrete action. Scenarios saved before this key existed
    # meant hard (simcode.marl.trainer.saved_scenario).
    actions: Literal["soft", "hard"] = Field("soft", description="soft: the sampled softmax vector "
                                             "(continuous actions); hard: its argmax (discrete actions)")
    # Both engines give the same numbers (tests/test_fast_mpe.py); mpe2 is the reference, and renders.
    engine: Literal["fast", "mpe2"] = Field("fast", description="fast: mpe2's scenarios stepped with numpy "
                                            "array operations (simcode.marl.fast_mpe); mpe2: mpe2 itself")


class MaddpgConfig(_Section):
    lr: Float = Field(0.01, gt=0, le=1)
    gamma: Float = Field(0.95, ge=0, le=1)
    tau: Float = Field(0.01, gt=0, le=1)
    batch_size: Int = Field(1024, ge=1, le=MAX_SIZE)
    hidden: Int = Field(64, ge=1, le=MAX_COUNT)
    steps_per_iteration: Int = Field(100, ge=1, le=MAX_SIZE)
    grad_clip: Float = Field(0.5, gt=0, le=1e6)
    policy_reg: Float = Field(1e-3, ge=0, le=1e6)
    buffer_size: Int = Field(1_000_000, ge=1, le=MAX_SIZE,
                             description="transitions kept; at least batch_size, steps_per_iteration, learning_starts")
    learning_starts: Int | None = Field(
        None, ge=0, le=MAX_SIZE, description="transitions before training; default batch_size * max_cycles"
    )
    good_policy: Literal["maddpg", "ddpg"] = "maddpg"
    adv_policy: Literal["maddpg", "ddpg"] = "maddpg"


class NetworkConfig(_Section):
    latency: Float = Field(0.0005, ge=0, le=MAX_SECONDS, description="seconds per message")
    bandwidth: Float = Field(1.25e9, gt=0, le=MAX_RATE, description="bytes per second")
    model: Literal["links", "shared", "ray"] = Field(
        "links", description="links: every message has its own link, no contention; shared: one network "
        "interface per node, a sender's messages leave one after another; ray: links that also cost what the "
        "real backend's Ray transport costs, from the profile's ray section (`simcode calibrate --ray`): "
        "per message, per byte put and fetched, and the learner's row on one thread (simcode.sim.network)")
    per_message: Float | None = Field(
        None, ge=0, le=MAX_SECONDS, description="seconds added to every message (serialisation); default none, "
        "or with cost.model: profile and the shared network the profile's serialisation cost")


class RayConfig(_Section):
    num_cpus: Float = Field(1.0, gt=0, le=MAX_COUNT, description="backend ray: CPUs each learner actor reserves")


class HostConfig(_Section):
    cores: Int = Field(..., ge=1, le=MAX_COUNT, description="the machine's cores, shared by its computations")
    learners: list[Int] = Field([], description="the learners it runs (indices from 0)")
    controller: Bool = Field(False, description="true: the controller runs here too")


class QuantileDeadline(_Section):
    quantile: Float = Field(..., gt=0, lt=1, description="the q-quantile of the learners' past response times")


DEADLINE_ALLOWED = "a number of seconds in (0, 1e9] or {quantile: q} with 0 < q < 1"
STRATEGY_KEYS = {"deadline": ("deadline", "stale"), "max_staleness": ("stale",)}  # key -> strategies using it


def _deadline(value: Any) -> Any:
    """`cluster.deadline` in one line of error: seconds, or {quantile: q} (pydantic's union errors are two)."""
    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")
    if value is None or isinstance(value, QuantileDeadline):
        return value
    if isinstance(value, dict) and set(value) == {"quantile"} and number(value["quantile"]) \
            and 0 < value["quantile"] < 1:
        return value
    if number(value) and 0 < value <= MAX_SECONDS:
        return value
    raise PydanticCustomError("deadline", f"not allowed; allowed: {DEADLINE_ALLOWED}")


class ClusterConfig(_Section):
    n_learners: Int = Field(5, ge=1, le=MAX_COUNT)
    backend: Literal["sim", "ray"] = Field(
        "sim", description="sim: the SimPy clock (simulated seconds); ray: real learners on Ray actors, real "
        "sleeps for the straggler delays, measured seconds (simcode.sim.real)")
    ray: RayConfig = RayConfig()
    hosts: list[HostConfig] | None = Field(
        None, description="machines and what runs on each: computations under way at once on one host share "
        "its cores (processor sharing, simcode.sim.hosts); default none: every learner has a machine of its own")
    network: NetworkConfig = NetworkConfig()
    on_decode: Literal["cancel", "let_finish", "cancel_wait"] = Field(
        "cancel", description="what late learners do once the controller decodes: cancel: stop at once and "
        "take the next work (on Ray, and with network.model ray, a started computation finishes first); "
        "let_finish: finish the late work first (it queues the next); cancel_wait: the "
        "seed's protocol: the controller acks every learner, the ack cuts a straggler's extra delay short "
        "but its computation runs to the end, and the next iteration starts when every learner is free")
    timeout: Float | None = Field(
        None, gt=0, le=MAX_SECONDS, description="seconds after which missing work is re-sent to learners that answered"
    )
    # Strategies (simcode.sim.strategy): exact decodes every agent every iteration; deadline and stale
    # change learning, so such a run never shares a training (simcode.study.spec.training_key).
    strategy: Literal["exact", "deadline", "stale"] = Field(
        "exact", description="exact: wait until every agent decodes; deadline: at cluster.deadline install the "
        "agents the results so far determine, the others keep their state; stale: deadline, and late results "
        "are installed when they arrive, up to cluster.max_staleness iterations old (needs on_decode: let_finish)")
    deadline: Annotated[Float | QuantileDeadline | None, BeforeValidator(_deadline)] = Field(
        None, description="deadline and stale: seconds after the work is sent, or {quantile: q}: the q-quantile "
        "of the learners' response times in the last 100 iterations (the first iteration waits for the decode)")
    # Stale keeps each of the last max_staleness iterations' states until its late rows are used up.
    max_staleness: Int | None = Field(
        None, ge=1, le=100, description="stale: oldest late result applied, in iterations (unset: 1)")

    def check_strategy(self, scheme: str, file: str | None = None) -> None:
        """The strategy keys fit together, the scheme and the backend, or BadInput naming the key."""
        for key, users in STRATEGY_KEYS.items():
            if getattr(self, key) is not None and self.strategy not in users:
                raise BadInput(f"cluster.{key}", f"used only by cluster.strategy {' or '.join(users)} (this run's is "
                               f"{self.strategy}); allowed: unset, or set cluster.strategy", file)
        if self.strategy == "exact":
            return
        if self.deadline is None:
            raise BadInput("cluster.deadline", f"missing: cluster.strategy {self.strategy} needs it; allowed: "
                           f"{DEADLINE_ALLOWED}", file)
        if scheme == CENTRALIZED:
            raise BadInput("cluster.strategy", f"{self.strategy} needs learners to wait for; allowed with "
                           f"code.name {CENTRALIZED}: exact", file)
        if self.backend != "sim":
            raise BadInput("cluster.strategy", f"{self.strategy} is not supported by the real backend yet; allowed "
                           "with cluster.backend ray: exact", file)
        if self.strategy == "stale" and self.on_decode != "let_finish":
            raise BadInput("cluster.on_decode", f"{self.on_decode} stops the late work that stale applies; allowed "
                           "with cluster.strategy stale: let_finish", file)


class CostConfig(_Section):
    model: Literal["fixed", "flops", "measured", "profile"] = "fixed"
    profile: str | None = Field(None, description="profile: a cost profile written by `simcode calibrate`; a "
                                "relative path is looked up beside the scenario file, in the current "
                                "directory, then among the shipped profiles (simcode/data/profiles)")
    rank_check: Bool = Field(False, description="profile: charge the controller the seed's rank check of the "
                             "received rows after every arrival")
    update: Float = Field(0.01, ge=0, le=MAX_SECONDS, description="fixed: seconds per agent update")
    env_step: Float = Field(0.0005, ge=0, le=MAX_SECONDS, description="fixed/flops: seconds per environment step")
    decode: Float = Field(1e-9, ge=0, le=1, description="seconds per decoded value (fixed and flops)")
    flops_rate: Float = Field(5e9, gt=0, le=MAX_RATE, description="flops: floating-point operations per second")


class RunConfig(_Section):
    iterations: Int = Field(200, ge=1, le=MAX_SIZE)
    workload: Literal["maddpg", "timing"] = "maddpg"
    checkpoint_every: Int = Field(0, ge=0, le=MAX_SIZE,
                                  description="train: iterations between checkpoints (0: only at the end)")
    log_every: Int = Field(1, ge=1, le=MAX_SIZE)


class Scenario(_Section):
    seed: Int = Field(0, ge=0, le=MAX_SEED)
    env: EnvConfig = EnvConfig()
    maddpg: MaddpgConfig = MaddpgConfig()
    cluster: ClusterConfig = ClusterConfig()
    code: CodeConfig = Field(default_factory=sections.default_code)
    delay: DelayConfig = Field(default_factory=sections.default_delay)
    cost: CostConfig = CostConfig()
    run: RunConfig = RunConfig()

    @field_validator("code", "delay", mode="before")
    @classmethod
    def _named(cls, value: Any, info: Any) -> Any:
        return sections.with_name(info.field_name, value)

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

def parse_set(items: list[str] | None) -> dict[str, Any]:
    """`["a.b=1", "c=x"]` -> {"a.b": 1, "c": "x"}; values parsed as YAML scalars/lists (`1e6` is a number)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise BadInput("--set", f"{item!r} is not key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise BadInput("--set", f"{item!r} has an empty key")
        if not all(part.strip() for part in key.split(".")):
            raise BadInput("--set", f"{item!r}: the key {key!r} has an empty part; allowed: dotted keys such as "
                                    "env.n_agents")
        try:
            out[key] = parse_yaml(text) if text.strip() else ""
        except DuplicateKey as exc:
            raise BadInput("--set", f"{key}: {exc.problem}") from None
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
    # Names first: changing the scheme or delay model drops the old one's parameters, and must not drop
    # the new one's given in the same overrides (`--set code.p=0.5 --set code.name=random_sparse`).
    names_first = sorted(overrides.items(), key=lambda item: item[0] not in ("code.name", "delay.name"))
    for key, value in names_first:
        if key in ("code.name", "delay.name") and get_dotted(data, key) != value:
            section = key.split(".")[0]
            kept = {"mode": data[section]["mode"]} if section == "delay" and "mode" in data.get(section, {}) else {}
            data[section] = kept
        set_dotted(data, key, value)
    return data


def _submodel(field: Any, name: Any = None) -> type[BaseModel] | None:
    """The model a field holds, or None: for a code or delay section, the one its `name` picks."""
    if field.discriminator:
        return next((m for m in get_args(field.annotation) if m.model_fields["name"].default == name), None)
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def unknown_key(key: str, data: dict[str, Any]) -> str | None:
    """Why dotted `key` is not a key of the scenario `data` describes ('unknown key; allowed: ...'),
    or None when it is one (or lies in a section whose scheme is unknown: validation says so)."""
    model: type[BaseModel] | None = Scenario
    parts = key.split(".")
    for depth, part in enumerate(parts):
        path = ".".join(parts[:depth + 1])
        if part not in model.model_fields:
            where = f" in {'.'.join(parts[:depth])}" if depth else ""
            return f"unknown key{where}; allowed: {', '.join(model.model_fields)}"
        field = model.model_fields[part]
        if field.discriminator:  # a scheme's or delay model's keys depend on its name
            default = field.get_default(call_default_factory=True).name
            model = _submodel(field, get_dotted(data, f"{path}.name", default))
            if model is None:
                return None
            continue
        model = _submodel(field)
        if model is None:
            return None if depth == len(parts) - 1 else f"{path} has no sub-keys"
    return None


def _locate(loc: tuple) -> tuple[str, Any]:
    """The dotted key and pydantic field of an error location. A section's tag (its scheme's name,
    which pydantic puts in the location) is no key; the field is None for an unknown key."""
    model: type[BaseModel] | None = Scenario
    keys: list[str] = []
    field = None
    parts = [str(p) for p in loc]
    while parts and model is not None:
        part = parts.pop(0)
        keys.append(part)
        field = model.model_fields.get(part)
        if field is None:
            break
        model = _submodel(field, parts.pop(0) if field.discriminator and parts else None)
    return ".".join(keys), field


def _pydantic_to_bad_input(exc: ValidationError, file: str | None, data: dict[str, Any]) -> BadInput:
    err = first_error(exc)
    key, field = _locate(err["loc"])
    if err["type"] == "extra_forbidden":
        return BadInput(key, unknown_key(key, data) or "unknown key", file)
    if err["type"] == "union_tag_invalid":  # a code or delay section naming nothing registered
        return BadInput(f"{key}.name", sections.unknown_name(key, err["input"]["name"]), file)
    return BadInput(key, problem(err, field), file)


def scenario_from_dict(data: dict[str, Any], file: str | None = None, keep_built: bool = False) -> Scenario:
    """The scenario `data` describes, every check done, or BadInput. With `keep_built`, the code and
    delay model built to check it are kept for the run (simcode.sections): for a scenario that runs
    here and now, not for one of a study's many, which run elsewhere from their dicts."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_to_bad_input(exc, file, data) from None
    scenario.cluster.check_strategy(scenario.code.name, file)
    from simcode.scenario_checks import validate_scenario  # it imports the leaves: only when needed

    validate_scenario(scenario, file, keep_built)
    from simcode.sim.profile import check_cost  # the profile model lives with the simulator

    check_cost(scenario, file)
    return scenario


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a scenario file (or the shipped scenario it names), apply `--set` overrides and validate
    everything, or raise BadInput."""
    path = resolve_scenario_path(path)
    data = apply_overrides(read_yaml(path), overrides or {})
    trace_file = get_dotted(data, "delay.file")
    if isinstance(trace_file, str) and not Path(trace_file).is_absolute():
        beside = Path(path).parent / trace_file
        if beside.exists():  # a measured-delay file named relative to the scenario that uses it
            set_dotted(data, "delay.file", str(beside.resolve()))
    return scenario_from_dict(data, str(path), keep_built=True)


def n_agents_of(env: EnvConfig) -> int:
    """How many learning agents the environment has."""
    return MPE_SCENARIOS[env.scenario].n_agents(env)

