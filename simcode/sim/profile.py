"""Cost profiles: the simulated seconds of each piece of work, fitted once on a real machine.

`simcode calibrate` measures this machine running simcode's own code and writes a profile (YAML);
a scenario names it (`cost: {model: profile, profile: FILE}`) and every run reads the numbers from
it, so the simulated times are this machine's yet the same on any machine that runs the scenario.

Each cost is a small linear model in features that the work's own sizes give:
- update: one agent's MADDPG update, `intercept + per_gflop * GFLOP` (its floating-point work grows
  with the centralized critic's input, so with M); a learner pays the sum over its row's agents.
- env_step: one environment step with every agent acting, per scenario, `c0 + c1 M + c2 M^2`
  (mpe2's physics loops over pairs of entities).
- decode: copying agents that arrived alone costs `per_copied_value` per value; solving for the
  others `per_solved_value` per (solved agent x row used x value), plus `intercept` when anything is
  solved. A decode that only copies (uncoded, replication, systematic rows) costs nothing: the
  decoded states are the received ones.
- rank_check: the seed's check after every arrival, a rank of the received rows, `intercept +
  per_row_agent2 * rows * M^2` (an SVD's work).
- serialize: pickling a message and pushing it through a loopback socket, `per_message + bytes /
  bytes_per_second`.
- ray (optional, `simcode calibrate --ray`): what the real backend's Ray messages cost, for
  scenarios whose `cluster.network.model` is `ray` (simcode.sim.cost.RayTransportCost), as CPU
  seconds that the hosts' cores serve (simcode.sim.calibrate_ray says why): `put`, the driver's
  ray.put of the states and of the minibatch, per call and per byte; `submit`, the driver's work per
  task sent and its reply, and (`thread`) its own thread's part, per task submitted and per answer
  taken, the rest on Ray's threads in the driver process; `ack`, per acknowledgement of a late
  learner; `task`, the actor's work per task, and `raylet`, its host's raylet's (the object store,
  one request at a time), per byte received and returned; `learner`, a learner actor's own
  computation of its row on one torch thread (unpack every state, update the row's agents, pack,
  combine), `intercept + per_gflop * GFLOP of the row + per_state_value * values of all states`, and
  its measured `points`, which price the rows of the problems they measured (the fit missed some by
  10 to 14%); `crowded`, the speed of a row in a gather crowded with three learners a core against
  alone; `idle`, the cores' worth of CPU Ray's threads take while idle (the daemons, each actor, the
  driver), taken from the hosts' cores (simcode.sim.hosts); `driver`, how much longer the
  controller's environment steps take in a Ray driver, right after a gather, than alone;
  `alone`, the same in a Ray driver that computes every update itself between its steps (centralized);
  `controller`, a centralized real run's update of every agent on one torch thread, between its
  environment steps, `per_agent * M + per_gflop * GFLOP` (within 6% from M = 3 to 10, where a line
  in GFLOP alone missed by 15%), and its measured `points`, which price the problems they measured;
  `sample`, the Ray driver's draw of the minibatches after its environment steps, `per_call +
  per_row_agent * M * rows`; `send`, the same driver's put of an iteration's arguments (every state
  packed and put, the minibatch put), `per_call + per_state_value * values + per_row_agent * M *
  rows`; `wake`, the seconds of work a process that wakes on a host whose cores are all busy runs at
  once, ahead of those sharing them (Linux's slice for a woken task, measured; simcode.sim.hosts);
  `probe`, seconds of a fixed piece of work at calibration (100 environment steps,
  simcode.sim.calibrate_ray_host.speed_probe), which each real run measures again before it starts.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simcode.errors import BadInput
from simcode.yamlfiles import read_yaml

if TYPE_CHECKING:
    from simcode.config import Scenario


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class UpdateCost(_Part):
    intercept: float = Field(ge=0, description="seconds per agent update")
    per_gflop: float = Field(ge=0, description="seconds per GFLOP of the update")

    def seconds(self, gflop: float) -> float:
        return self.intercept + self.per_gflop * gflop


class EnvStepCost(_Part):
    c0: float = Field(ge=0, description="seconds per step")
    c1: float = Field(ge=0, description="seconds per step per agent")
    c2: float = Field(ge=0, description="seconds per step per agent squared")

    def seconds(self, n_agents: int) -> float:
        return self.c0 + self.c1 * n_agents + self.c2 * n_agents**2


class DecodeCost(_Part):
    intercept: float = Field(ge=0, description="seconds per decode that solves")
    per_copied_value: float = Field(ge=0, description="seconds per value copied from a unit row")
    per_solved_value: float = Field(ge=0, description="seconds per solved agent x row used x value")

    def seconds(self, copied: int, solved: int, rows_used: int, values: int) -> float:
        if solved == 0:
            return 0.0
        return (self.intercept + self.per_copied_value * copied * values
                + self.per_solved_value * solved * rows_used * values)


class RankCheckCost(_Part):
    intercept: float = Field(ge=0)
    per_row_agent2: float = Field(ge=0, description="seconds per received row x M^2")

    def seconds(self, rows: int, n_agents: int) -> float:
        return self.intercept + self.per_row_agent2 * rows * n_agents**2


class SerializeCost(_Part):
    per_message: float = Field(ge=0, description="seconds per message")
    bytes_per_second: float = Field(gt=0)

    def seconds(self, nbytes: float) -> float:
        return self.per_message + nbytes / self.bytes_per_second


class MeasuredPoint(_Part):
    """One measured computation of calibrate --ray: an update of every agent (the controller's), or a
    learner's row (RowPoint)."""

    agents: int = Field(ge=1, description="M of the measured problem")
    batch: int = Field(ge=1, description="its minibatch rows")
    gflop: float = Field(gt=0, description="GFLOP of the updates it computed")
    seconds: float = Field(gt=0, description="its measured seconds")


class RowPoint(MeasuredPoint):
    state_values: int = Field(ge=1, description="values of all its agents' states (which networks)")


class LearnerCost(_Part):
    intercept: float = Field(ge=0, description="seconds per row")
    per_gflop: float = Field(ge=0, description="seconds per GFLOP of the row's updates")
    per_state_value: float = Field(ge=0, description="seconds per value of all agents' states (unpacked)")
    # Written by calibrate --ray since the fit was seen to miss measured rows by up to 14% (M = 5, every
    # agent: -10%); a section without them prices every row by the fit.
    points: list[RowPoint] | None = Field(None, description="the measured rows: a row of a measured problem is "
                                          "priced from them, the fit prices the rest")

    def seconds(self, gflop: float, state_values: int) -> float:
        return self.intercept + self.per_gflop * gflop + self.per_state_value * state_values

    def row_seconds(self, agents: int, batch: int, gflop: float, state_values: int) -> float:
        """A row of `gflop` in a problem of `agents` agents, minibatches of `batch` and `state_values`:
        when that problem was measured, on the straight line in GFLOP through its rows of fewest and
        most GFLOP (at one problem a row's unpacking and combining are the same, its updates scale
        with its agents' GFLOP); otherwise the fit."""
        same = sorted((p.gflop, p.seconds) for p in self.points or []
                      if (p.agents, p.batch, p.state_values) == (agents, batch, state_values))
        if len(same) < 2 or same[0][0] == same[-1][0]:
            return self.seconds(gflop, state_values)
        (low, at_low), (high, at_high) = same[0], same[-1]
        return at_low + (at_high - at_low) * (gflop - low) / (high - low)


class ControllerCost(_Part):
    per_agent: float = Field(ge=0, description="seconds per agent updated (its nets' calls)")
    per_gflop: float = Field(ge=0, description="seconds per GFLOP of the update")
    points: list[MeasuredPoint] | None = Field(None, description="the measured updates: a measured problem's is "
                                             "priced as measured, the fit prices the rest")

    def seconds(self, n_agents: int, gflop: float, batch: int | None = None) -> float:
        """The update of every one of `n_agents` agents: as measured when its problem was (the same M,
        minibatch and GFLOP), otherwise the fit (within 6% of the measured points)."""
        for point in self.points or []:
            if (point.agents, point.batch) == (n_agents, batch) and math.isclose(point.gflop, gflop, rel_tol=1e-6):
                return point.seconds
        return self.per_agent * n_agents + self.per_gflop * gflop


class SampleCost(_Part):
    per_call: float = Field(ge=0, description="seconds per draw of every agent's minibatch")
    per_row_agent: float = Field(ge=0, description="seconds per agent x minibatch row drawn")

    def seconds(self, n_agents: int, rows: int) -> float:
        return self.per_call + self.per_row_agent * n_agents * rows


class SendCost(_Part):
    per_call: float = Field(ge=0, description="seconds per put of an iteration's states and minibatch")
    per_state_value: float = Field(ge=0, description="seconds per value of every agent's state (packed, put)")
    per_row_agent: float = Field(ge=0, description="seconds per agent x minibatch row put")

    def seconds(self, state_values: int, n_agents: int, rows: int) -> float:
        return self.per_call + self.per_state_value * state_values + self.per_row_agent * n_agents * rows


class RayIdle(_Part):
    """Cores' worth of CPU Ray's threads take while nothing is sent (CPU seconds per second)."""

    daemons: float = Field(ge=0, le=1, description="the raylet, object store and GCS")
    learner: float = Field(ge=0, le=1, description="each learner actor's process")
    controller: float = Field(ge=0, le=1, description="the driver's Ray threads")


class DriverThread(_Part):
    """Of the driver's CPU per task (`submit`, the whole), what its own thread spends; the rest runs on
    Ray's threads in the driver process, beside it."""

    submit: float = Field(ge=0, description="seconds of the driver's thread per task submitted (pickle, submit)")
    reply: float = Field(ge=0, description="seconds of the driver's thread per answer taken (wait, get)")


class DeliveredDecode(_Part):
    """The controller's decode of rows as Ray delivers them (simcode.sim.calibrate_ray.measure_delivered_decode):
    each row it reads is a result in the object store."""

    per_decode: float = Field(ge=0, description="seconds per decode")
    per_value: float = Field(ge=0, description="seconds per value of the received rows it reads")


class RayCost(_Part):
    """CPU seconds Ray's messages cost (simcode.sim.calibrate_ray), and the learners' rows."""

    put: SerializeCost = Field(description="the driver's ray.put (driver and raylet CPU), per call and per byte")
    submit: SerializeCost = Field(description="the driver's CPU per task sent and its reply, per byte of the reply")
    ack: float = Field(ge=0, description="the driver's CPU per acknowledgement sent to a late learner")
    task: SerializeCost = Field(description="the actor's CPU per task, per byte received and returned")
    raylet: SerializeCost = Field(description="the raylet's CPU per task (its object store), per byte received "
                                  "and returned")
    learner: LearnerCost = Field(description="a learner actor's row, on one torch thread")
    crowded: float = Field(gt=0, le=1, description="a row's speed on a crowded host (3 actors a core) against "
                           "alone: seconds of a row alone / its CPU seconds in a gather of that many")
    idle: RayIdle = Field(description="Ray's own CPU while idle, taken from every host's cores")
    driver: float = Field(ge=1, description="the controller's environment steps in a Ray driver, right after a "
                          "gather, over in a plain process")
    alone: float | None = Field(None, ge=1, description="the same in a Ray driver that computes every update "
                                "itself, no gather between (centralized); without it, `driver`")
    # A ray section written before these were measured has none; its runs keep the prices they had
    # (centralized as a learner's row of every agent, no minibatch draw, no wake slice).
    controller: ControllerCost | None = Field(None, description="the controller's update of every agent on one "
                                              "torch thread (centralized on Ray), per agent and per GFLOP")
    sample: SampleCost | None = Field(None, description="the Ray driver's draw of every agent's minibatch")
    send: SendCost | None = Field(None, description="the Ray driver's put of an iteration's packed states and "
                                  "minibatch, as a real gather begins; without it, `put` of both (no packing)")
    wake: float | None = Field(None, ge=0, le=0.1, description="seconds of work a process that wakes on a busy "
                               "host runs on a core at once, before it shares the cores (the scheduler's slice)")
    thread: DriverThread | None = Field(None, description="the driver's own thread's part of `submit`; without it "
                                        "the whole of it is the driver thread's, at the submit")
    probe: float | None = Field(None, gt=0, description="seconds of the speed probe at calibration (the machine's "
                                "pace, against which real runs report their machine_speed)")
    delivered: DeliveredDecode | None = Field(None, description="the decode's reading of rows Ray delivered; "
                                              "without it, `decode` prices it (rows in the controller's memory)")
    task_before: float | None = Field(None, ge=0, le=1, description="of the actor's CPU per task (`task`), the share "
                                      "before its method begins (receive the task, read its arguments; the rest "
                                      "ships its result), measured on a quiet actor; without it, all of it before")


class Profile(_Part):
    provenance: dict[str, str] = Field(default_factory=dict)
    update: UpdateCost
    env_step: dict[str, EnvStepCost]
    decode: DecodeCost
    rank_check: RankCheckCost
    serialize: SerializeCost
    ray: RayCost | None = Field(None, description="the Ray transport (simcode calibrate --ray); none: not measured")
    residuals: dict[str, float] = Field(default_factory=dict, description="relative RMS residual of each fit")

    def env_step_seconds(self, scenario: str, n_agents: int) -> float:
        return self.env_step[scenario].seconds(n_agents)


# Profiles shipped with simcode: a scenario may name one by its file name alone.
PROFILES_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"
ALLOWED = "allowed: a file written by `simcode calibrate`"


def load_profile(path: str | Path, key: str = "cost.profile") -> Profile:
    """A profile from its YAML file, or BadInput under `key` naming the profile and what is wrong.

    Read once per file version: a study validates and then builds every run, each naming the same
    profile (2 ms a read), so the parsed profile is kept by path, size and modification time."""
    try:
        stat = Path(path).stat()
    except OSError:
        stat = None
    if stat is None:
        return _parse_profile(str(path), key)
    return _parsed(str(path), stat.st_size, stat.st_mtime_ns, key)


@functools.lru_cache(maxsize=16)
def _parsed(path: str, _size: int, _mtime_ns: int, key: str) -> Profile:
    return _parse_profile(path, key)


def _parse_profile(path: str, key: str) -> Profile:
    try:
        data = read_yaml(path)
    except BadInput as exc:  # what it allows (a UTF-8 YAML file, each key once) gives way to the profile's
        raise BadInput(key, f"{path}: {exc.message.split('; allowed: ')[0]}; {ALLOWED}") from None
    ray = data.get("ray") if isinstance(data, dict) else None
    if isinstance(ray, dict) and ("fetch" in ray or "per_message" in ray):
        raise BadInput(key, f"{path}: ray: written by an earlier simcode, whose ray section priced messages as "
                       "delays, not CPU; allowed: a profile from `simcode calibrate --ray` run again")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise BadInput(key, f"{path}: {where}: {err['msg']}; {ALLOWED}") from None


def find_profile(name: str, beside: str | Path | None) -> Path | None:
    """The file a scenario's `cost.profile` names, as an absolute path: `name` itself when absolute,
    else the first that exists of beside/name (the folder of the file that names it), ./name, and
    the shipped profiles directory's name. None when there is none."""
    path = Path(name)
    if path.is_absolute():
        return path if path.exists() else None
    folders = ([Path(beside)] if beside is not None else []) + [Path.cwd(), PROFILES_DIR]
    return next(((folder / path).resolve() for folder in folders if (folder / path).exists()), None)


def check_cost(scenario: Scenario, file: str | None = None) -> None:
    """Cost keys that depend on each other (simcode.config.scenario_from_dict runs this): `profile`
    needs a profile file that loads and covers the scenario's environment, resolved here, once, to an
    absolute path; only a profile prices the rank check. BadInput naming `file` and the key otherwise."""
    cost = scenario.cost
    if cost.rank_check and cost.model != "profile":
        raise BadInput("cost.rank_check", "a profile prices the rank check; allowed: true with cost.model: profile",
                       file)
    ray_transport = scenario.cluster.network.model == "ray"
    if ray_transport and cost.model != "profile":
        raise BadInput("cluster.network.model", f"ray prices messages from a profile's ray section, and cost.model "
                       f"is {cost.model}; allowed: ray with cost.model: profile and a profile written by "
                       "`simcode calibrate --ray`", file)
    if cost.model != "profile":
        return
    if not cost.profile:
        raise BadInput("cost.profile", "missing; allowed: with cost.model: profile, a file written by "
                                       "`simcode calibrate`", file)
    beside = Path(file).parent if file else None
    found = find_profile(cost.profile, beside)
    if found is None:
        shipped = ", ".join(sorted(p.name for p in PROFILES_DIR.glob("*.yaml"))) or "none"
        where = f"beside {beside}, " if beside is not None else ""
        raise BadInput("cost.profile", f"{cost.profile}: file not found ({where}in the current directory, or "
                                       f"shipped: {shipped}); {ALLOWED}", file)
    try:
        profile = load_profile(found)
    except BadInput as exc:
        raise exc.within(None, file) from None
    env = scenario.env.scenario
    if env not in profile.env_step:
        raise BadInput("cost.profile", f"{found}: env_step has no cost for env.scenario {env!r}; allowed: a profile "
                                       f"measured on it (this one has: {', '.join(sorted(profile.env_step))})", file)
    if ray_transport and profile.ray is None:
        raise BadInput("cluster.network.model", f"ray needs the profile's ray section, and {found} has none; "
                       "allowed: a profile written by `simcode calibrate --ray`, or another network model", file)
    cost.profile = str(found)


def fit_linear(features: np.ndarray, seconds: np.ndarray, relative: bool = True) -> tuple[np.ndarray, float]:
    """Non-negative least-squares coefficients of seconds ~ features @ coef (every cost grows with its
    feature), and the relative RMS residual.

    `relative` weights each point by 1/seconds, so a fit across sizes that differ by orders of
    magnitude is judged by its relative errors, not dominated by the largest points; without it the
    largest points decide (right for a cost whose large cases matter most, such as big messages)."""
    from scipy.optimize import lsq_linear

    features = np.asarray(features, dtype=float)
    seconds = np.asarray(seconds, dtype=float)
    weights = 1.0 / seconds if relative else np.full_like(seconds, 1.0 / seconds.max())
    coef = lsq_linear(features * weights[:, None], seconds * weights, bounds=(0.0, np.inf)).x
    relative = features @ coef / seconds - 1.0
    return coef, float(np.sqrt(np.mean(relative**2)))
