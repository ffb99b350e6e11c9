"""Will it fit? Memory footprints estimated from shapes, checked before anything is allocated.

A size typed by mistake (`--set env.n_agents=100000`, `--agents 1000000000000`) must end in one
line that says how much is needed against how much the machine has, not in a MemoryError
traceback or the kernel's out-of-memory killer minutes later.

The estimates are simple on purpose: they add up only the largest arrays a run holds at once, each
at its real size (float32 networks, Adam moments and replay buffer; float64 code matrices and
decoded states), in Python integers so that absurd sizes cannot overflow. Interpreter, PyTorch and
environment overheads are left out, so an estimate stays below the true peak: what is rejected
certainly cannot fit, and what passes may still be tight on a busy machine.

Sizes are computed here by arithmetic (no environment is built: building one with 10^5 agents is
itself what must not happen); tests check them against the environments' real sizes.
"""

from __future__ import annotations

import os
from pathlib import Path

from simcode.codes import CENTRALIZED
from simcode.errors import BadInput
from simcode.params import short_number

GIB = 2**30
FLOAT32, FLOAT64 = 4, 8
MOVES = 5  # an agent that moves chooses among 5 movements (none, -x, +x, -y, +y)


def total_memory_bytes() -> int | None:
    """Physical memory of the machine (or of its container's limit, when lower); None if unknown."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # no sysconf names on this platform
        sizes.append(_meminfo_total())
    sizes.append(_cgroup_limit())
    known = [s for s in sizes if s]
    return min(known) if known else None


def _meminfo_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limit() -> int | None:
    """A cgroup v2 memory limit ('max' means none)."""
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def gib(nbytes: int) -> str:
    """Bytes as GiB (also for integers too large for a float)."""
    try:
        return short_number(nbytes / GIB)
    except OverflowError:
        return f"1e{len(str(nbytes // GIB)) - 1}"


def check_fits(parts: list[tuple[str, str, int]], subject: str, file: str | None = None,
               available: int | None = None) -> None:
    """BadInput when the parts (key that sizes it, what it is, bytes) need more than the machine has;
    the line names the largest part and its key."""
    available = total_memory_bytes() if available is None else available
    needed = sum(nbytes for _, _, nbytes in parts)
    if available is None or needed <= available:
        return
    key, what, largest = max(parts, key=lambda part: part[2])
    share = "" if len(parts) == 1 else f" (mostly {what}: ~{gib(largest)} GiB)"
    raise BadInput(key, f"{subject} needs ~{gib(needed)} GiB of memory{share}, this machine has "
                        f"{gib(available)} GiB; allowed: sizes that fit in memory", file)


# --------------------------------------------------------------------------- sizes of a problem
# Agents come as groups (observation length, action length, how many agents have them): a list with
# one entry per agent would itself be the allocation to avoid at absurd agent counts. An action's
# length is the sum of its components' (movement: MOVES; communication: the scenario's symbols).
Groups = list[tuple[int, int, int]]


def _spread(env) -> Groups:  # own vel, pos; every landmark; other agents' pos and comm
    return [(6 * env.n_agents, MOVES, env.n_agents)]


def _adversary(env) -> Groups:  # N good agents, N landmarks, one adversary (first)
    return [(4 * env.n_agents, MOVES, 1), (4 * env.n_agents + 2, MOVES, env.n_agents)]


def _tag(env) -> Groups:  # obstacles, everyone's position, the prey's velocities
    common = 4 + 2 * env.n_obstacles + 2 * (env.n_adversaries + env.n_good - 1)
    return [(common + 2 * env.n_good, MOVES, env.n_adversaries), (common + 2 * (env.n_good - 1), MOVES, env.n_good)]


def _world_comm(env) -> Groups:
    """Own vel and pos, the obstacles, food and forests, the others' positions, the good agents'
    velocities, one in-forest flag per forest; adversaries also hear the leader (4 symbols), and the
    leader speaks them."""
    common = 4 + 2 * (env.n_obstacles + env.n_food + env.n_forests) + 2 * (env.n_adversaries + env.n_good - 1)
    common += env.n_forests
    adversary = common + 2 * env.n_good + 4
    groups = [(adversary, MOVES + 4, 1), (adversary, MOVES, env.n_adversaries - 1),
              (common + 2 * (env.n_good - 1), MOVES, env.n_good)]
    return [group for group in groups if group[2]]


# One entry per scenario of simcode.mpe_scenarios.MPE_SCENARIOS (a test checks both lists and sizes).
OBSERVATIONS = {"simple_spread": _spread, "simple_adversary": _adversary, "simple_tag": _tag,
                "simple_push": lambda env: [(8, MOVES, 1), (19, MOVES, 1)],  # the adversary, the good agent
                "simple": lambda env: [(4, MOVES, 1)],
                # both move and say one of 10 symbols; they see the landmarks, the goal colour, the other's word
                "simple_reference": lambda env: [(21, MOVES + 10, 2)],
                # the speaker sees the goal colour and says one of 3 symbols; the listener moves
                "simple_speaker_listener": lambda env: [(3, 3, 1), (11, MOVES, 1)],
                # eve hears alice; bob and alice know the key; all say one of 4 symbols
                "simple_crypto": lambda env: [(4, 4, 1), (8, 4, 2)],
                "simple_world_comm": _world_comm}


def observation_groups(env) -> Groups:
    """(observation length, action length, number of agents) in the MPE scenario of `env` (a
    config.EnvConfig)."""
    return OBSERVATIONS[env.scenario](env)


def _agents(groups: Groups) -> int:
    return sum(count for _, _, count in groups)


def _obs_total(groups: Groups) -> int:
    return sum(size * count for size, _, count in groups)


def _act_total(groups: Groups) -> int:
    return sum(act * count for _, act, count in groups)


def agent_state_floats(groups: Groups, hidden: int) -> list[tuple[int, int]]:
    """(flat state length, number of agents): (actor + critic) x (weights, targets, Adam m, Adam v)
    + the Adam step. Every critic is counted as a MADDPG one (all observations and actions in)."""
    critic_in = _obs_total(groups) + _act_total(groups)
    critic = critic_in * hidden + hidden + hidden * hidden + hidden + hidden + 1
    return [(4 * (d * hidden + hidden + hidden * hidden + hidden + hidden * a + a + critic) + 1, count)
            for d, a, count in groups]


def transition_floats(groups: Groups) -> int:
    """One stored transition: joint obs and next obs, joint action, rewards and done flags."""
    return 2 * _obs_total(groups) + _act_total(groups) + 2 * _agents(groups)


def minibatch_bytes(groups: Groups, batch: int) -> int:
    """Every agent's own minibatch of joint transitions, gathered at once (float32)."""
    return _agents(groups) * batch * transition_floats(groups) * FLOAT32


def states_bytes(groups: Groups, hidden: int) -> int:
    """Agents' float32 states three times: current, updated, and packed flat for the controller."""
    return 3 * sum(size * count for size, count in agent_state_floats(groups, hidden)) * FLOAT32


def code_bytes(n_agents: int, n_learners: int) -> int:
    """Building a code: its N x M float64 matrix, the candidate matrices the construction compares,
    and the M x M subsets it scores (mds draws CANDIDATES matrices and scores SCORED_SUBSETS)."""
    from simcode.codes.mds import CANDIDATES, SCORED_SUBSETS

    return FLOAT64 * ((CANDIDATES + 2) * n_learners * n_agents + SCORED_SUBSETS * n_agents * n_agents)


# --------------------------------------------------------------------------- footprints
# Each footprint is a list of parts: (the key that sizes it, what it is, bytes).

def _agent_keys(env) -> str:
    """The keys that set how many agents an environment has."""
    from simcode.mpe_scenarios import MPE_SCENARIOS

    return ", ".join(f"env.{key}" for key in MPE_SCENARIOS[env.scenario].agent_keys) or "env.scenario"


def training_parts(scenario) -> list[tuple[str, str, int]]:
    """MADDPG training of a config.Scenario: replay buffer, minibatches, agents' states."""
    groups = observation_groups(scenario.env)
    agents, m = _agent_keys(scenario.env), scenario.maddpg
    stored = min(m.buffer_size, scenario.learning_starts + scenario.run.iterations * m.steps_per_iteration)
    # Twice the stored transitions: the buffer grows by doubling, and a checkpoint copies it.
    return [(f"{agents}, maddpg.buffer_size", "the replay buffer", 2 * stored * transition_floats(groups) * FLOAT32),
            (f"{agents}, maddpg.batch_size", "the minibatches", minibatch_bytes(groups, m.batch_size)),
            (f"{agents}, maddpg.hidden", "the agents' networks and Adam states", states_bytes(groups, m.hidden))]


def simulation_parts(scenario, real: bool) -> list[tuple[str, str, int]]:
    """A simulated run: the environment's joint observation, the code's construction and, with real
    computation, the training plus the float64 states the controller decodes and checks (direct,
    decoded, a scratch copy) and one coded result per learner, and, with cluster.strategy stale, the
    states of the iterations whose late results may still be applied."""
    groups = observation_groups(scenario.env)
    agents, n_agents, n_learners = _agent_keys(scenario.env), _agents(groups), scenario.cluster.n_learners
    parts = [(agents, "the joint observation", _obs_total(groups) * FLOAT64)]
    if scenario.code.name != CENTRALIZED:
        parts.append((f"{agents}, cluster.n_learners", "the code matrix", code_bytes(n_agents, n_learners)))
    if real:
        padded = max(size for size, _ in agent_state_floats(groups, scenario.maddpg.hidden))
        parts += training_parts(scenario)
        parts.append((f"{agents}, cluster.n_learners", "the decoded states",
                      (3 * n_agents + n_learners) * padded * FLOAT64))
        if scenario.cluster.strategy == "stale":  # each iteration late rows may still come for keeps its states
            kept = (scenario.cluster.max_staleness or 1) + 1
            parts.append((f"{agents}, cluster.max_staleness", "the states stale updates are kept for",
                          kept * n_agents * padded * FLOAT64))
    return parts


def bench_parts(agents: int, batch: int, hidden: int, env=None) -> list[tuple[str, str, int]]:
    """`simcode bench updates` (simple_spread with `agents`, or the scenario of `env`): a random
    minibatch (drawn in float64, kept in float32), the batched update's states and the per-agent
    loop's networks and optimizers."""
    groups = [(6 * agents, MOVES, agents)] if env is None else observation_groups(env)
    agents = _agents(groups)
    drawn = agents * batch * _obs_total(groups) * FLOAT64
    return [("--agents, --batch", "the minibatches", drawn + minibatch_bytes(groups, batch)),
            ("--agents", "the agents' networks and Adam states", 2 * states_bytes(groups, hidden))]
