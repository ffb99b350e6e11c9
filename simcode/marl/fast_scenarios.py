"""Each mpe2 scenario's observations and rewards, on a world's arrays (simcode.marl.fast_world).

An observation is listed once per episode as indices into the step's numbers (`Pieces`, `source`),
so that each step is one gather; a reward is a few array operations on the step's distances. Both
follow the scenario's mpe2 code line by line (the same terms, added in the same order), so the
numbers are mpe2's: tests/test_fast_mpe.py checks each scenario against mpe2 itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simcode.marl.fast_world import WorldArrays

# ------------------------------------------------------------------ observations: one gather a step


class Pieces:
    """Where each piece of an observation sits in `source(arrays)`, the step's numbers in one vector:
    velocities, positions, relative positions, a zero, colours, what the agents said, and the
    scenario's own per-step numbers (`ScenarioStep.extras`). A scenario lists an agent's observation
    as these indices once per episode; each step is then one gather."""

    def __init__(self, arrays: WorldArrays):
        self.n_agents = n = arrays.n_agents
        self.n_entities = e = len(arrays.pos)
        self._rel0 = 4 * e
        self._zero = self._rel0 + 2 * n * e
        self._colors = arrays.color_starts + self._zero + 1
        self._comm0 = self._colors[-1]
        self._dim_c = arrays.comm.shape[1]
        self._extras0 = self._comm0 + n * self._dim_c
        self.landmarks = range(n, e)

    def vel(self, entity: int) -> list[int]:
        return [2 * entity, 2 * entity + 1]

    def pos(self, entity: int) -> list[int]:
        return [2 * (self.n_entities + entity), 2 * (self.n_entities + entity) + 1]

    def rel(self, agent: int, entity: int) -> list[int]:
        """entity position - agent position"""
        start = self._rel0 + 2 * (agent * self.n_entities + entity)
        return [start, start + 1]

    def zeros(self, count: int) -> list[int]:
        return [self._zero] * count

    def color(self, entity: int) -> list[int]:
        return list(range(self._colors[entity], self._colors[entity + 1]))

    def comm(self, agent: int) -> list[int]:
        """What the agent said last step (mpe2's state.c)."""
        return list(range(self._comm0 + agent * self._dim_c, self._comm0 + (agent + 1) * self._dim_c))

    def extras(self, start: int, count: int) -> list[int]:
        """The scenario's own numbers `start` to `start + count` of this step."""
        return list(range(self._extras0 + start, self._extras0 + start + count))

    def others(self, agent: int) -> list[int]:
        return [j for j in range(self.n_agents) if j != agent]


def source(arrays: WorldArrays, extras: np.ndarray | None = None) -> np.ndarray:
    """The step's numbers in the order `Pieces` indexes them, cast to float32 as mpe2's observe()."""
    parts = [arrays.vel.reshape(-1), arrays.pos.reshape(-1), arrays.rel.reshape(-1), [0.0], arrays.colors,
             arrays.comm.reshape(-1)]
    return np.concatenate(parts if extras is None else parts + [extras]).astype(np.float32)


def joined(lists) -> list[int]:
    return [index for piece in lists for index in piece]


def spread_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    others = w.others(i)
    return joined([w.vel(i), w.pos(i), *(w.rel(i, lm) for lm in w.landmarks), *(w.rel(i, o) for o in others),
                   w.zeros(2 * len(others))])  # silent agents' communication: zeros


def tag_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    others = w.others(i)
    return joined([w.vel(i), w.pos(i), *(w.rel(i, lm) for lm in w.landmarks), *(w.rel(i, o) for o in others),
                   *(w.vel(o) for o in others if not arrays.adversary[o])])


def adversary_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    seen = joined([*(w.rel(i, lm) for lm in w.landmarks), *(w.rel(i, o) for o in w.others(i))])
    # the adversary does not know which landmark is the goal
    return seen if arrays.adversary[i] else w.rel(i, w.n_agents + arrays.goal) + seen


def push_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    landmarks = joined(w.rel(i, lm) for lm in w.landmarks)
    others = joined(w.rel(i, o) for o in w.others(i))
    if arrays.adversary[i]:
        return w.vel(i) + landmarks + others
    colors = joined(w.color(lm) for lm in w.landmarks)
    return w.vel(i) + w.rel(i, w.n_agents + arrays.goal) + w.color(i) + landmarks + colors + others


def simple_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    return w.vel(i) + joined(w.rel(i, lm) for lm in w.landmarks)


def speaker_listener_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    if not arrays.movable[i]:  # the speaker sees the target's colour
        return w.color(w.n_agents + arrays.goals[i])
    # the listener: its velocity, the landmarks, and what the speaker said
    return w.vel(i) + joined(w.rel(i, lm) for lm in w.landmarks) + joined(w.comm(o) for o in w.others(i))


def reference_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    # the colour of agent i's goal_b: the landmark the *other* agent must reach
    return (w.vel(i) + joined(w.rel(i, lm) for lm in w.landmarks) + w.color(w.n_agents + arrays.goals[i])
            + joined(w.comm(o) for o in w.others(i)))


CRYPTO_SPEAKER = 2  # mpe2's simple_crypto: alice is agents[2] (eve is 0, bob 1)


def crypto_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    key = w.color(w.n_agents + arrays.key)
    if i == CRYPTO_SPEAKER:  # alice: the message (the goal's colour) and the key
        return w.color(w.n_agents + arrays.goals[i]) + key
    heard = w.comm(CRYPTO_SPEAKER)
    return heard if arrays.adversary[i] else key + heard  # eve hears only; bob also knows the key


def _forests(arrays: WorldArrays) -> range:
    """simple_world_comm's forests: its last landmarks (after the obstacles and the food)."""
    return range(len(arrays.pos) - arrays.n_forests, len(arrays.pos))


def world_comm_extras(arrays: WorldArrays) -> np.ndarray:
    """What simple_world_comm's agents see of each other through the forests, this step: per agent,
    1 or -1 per forest (inside it or not); then per (agent, other agent) the other's relative
    position and velocity where the agent sees it, zeros where the other is hidden. The leader sees
    everyone; any agent sees those in a forest it shares, and those outside forests if it is
    outside too."""
    n, forests = arrays.n_agents, _forests(arrays)
    inside = arrays.dist[:, forests] < arrays.size_sum[:, forests]  # (A, F): mpe2's is_collision
    shared = (inside[:, None, :] & inside[None, :, :]).any(axis=2)
    outside = ~inside.any(axis=1)
    seen = shared | (outside[:, None] & outside[None, :]) | arrays.leader[:, None]
    seen_pos = np.where(seen[..., None], arrays.rel[:, :n], 0.0)
    seen_vel = np.where(seen[..., None], arrays.vel[None, :n], 0.0)
    return np.concatenate([np.where(inside, 1.0, -1.0).reshape(-1), seen_pos.reshape(-1), seen_vel.reshape(-1)])


def world_comm_observation(w: Pieces, arrays: WorldArrays, i: int) -> list[int]:
    n, n_forests = arrays.n_agents, arrays.n_forests
    seen_pos0, seen_vel0 = n * n_forests, n * n_forests + 2 * n * n
    others = w.others(i)
    base = w.vel(i) + w.pos(i) + joined(w.rel(i, lm) for lm in w.landmarks)
    other_pos = joined(w.extras(seen_pos0 + 2 * (i * n + o), 2) for o in others)
    other_vel = joined(w.extras(seen_vel0 + 2 * (i * n + o), 2) for o in others if not arrays.adversary[o])
    in_forest = w.extras(i * n_forests, n_forests)
    if arrays.adversary[i]:  # the leader too; every adversary hears the leader
        return base + other_pos + other_vel + in_forest + w.comm(0)
    return base + other_pos + in_forest + other_vel


# ------------------------------------------------------------------ rewards, from the step's distances


def spread_rewards(arrays: WorldArrays, local_ratio: float) -> np.ndarray:
    n = arrays.n_agents
    hits = (arrays.dist[:, :n] < arrays.size_sum[:, :n]) & arrays.not_self[:, :n]
    agent_reward = -hits.sum(axis=1).astype(np.float64)
    nearest = arrays.dist[:, n:].min(axis=0)
    global_reward = -np.add.accumulate(nearest)[-1]  # mpe2 subtracts landmark by landmark from 0
    return global_reward * (1 - local_ratio) + agent_reward * local_ratio


def _boundary_penalty(x: np.ndarray) -> np.ndarray:
    """simple_tag's bound(x): 0 below 0.9, linear to 1, then exp(2x - 2) capped at 10."""
    if (x < 0.9).all():
        return np.zeros_like(x)
    with np.errstate(over="ignore"):
        outside = np.minimum(np.exp(2 * x - 2), 10)
    return np.where(x < 0.9, 0.0, np.where(x < 1.0, (x - 0.9) * 10, outside))


def tag_rewards(arrays: WorldArrays) -> np.ndarray:
    good, adv = arrays.good, arrays.adversaries
    dist, contact = arrays.dist[good], arrays.size_sum[good]
    caught = dist[:, adv] < contact[:, adv]  # (good, adversaries)
    rewards = np.empty(arrays.n_agents)
    rewards[adv] = 10.0 * caught.sum()
    penalty = _boundary_penalty(np.abs(arrays.pos[good]))
    rewards[good] = (-10.0 * caught.sum(axis=1) - penalty[:, 0]) - penalty[:, 1]
    return rewards


def adversary_rewards(arrays: WorldArrays) -> np.ndarray:
    dist = arrays.dist[:, arrays.n_agents + arrays.goal]
    # a good agent: -(the nearest good agent's distance) + the adversary's (mpe2's sum over adversaries)
    rewards = np.full(arrays.n_agents, -dist[~arrays.adversary].min() + dist[0])
    rewards[0] = -dist[0]
    return rewards


def push_rewards(arrays: WorldArrays) -> np.ndarray:
    dist = arrays.dist[:, arrays.n_agents + arrays.goal]
    return np.where(arrays.adversary, dist[~arrays.adversary].min() - dist, -dist)


def simple_rewards(arrays: WorldArrays) -> np.ndarray:
    return -arrays.squared[:, arrays.n_agents]  # the squared distance to the one landmark


def speaker_listener_rewards(arrays: WorldArrays) -> np.ndarray:
    listener, target = 1, arrays.n_agents + arrays.goals[0]  # the speaker's goal_a and goal_b
    return np.full(arrays.n_agents, -arrays.squared[listener, target])


def reference_rewards(arrays: WorldArrays, local_ratio: float) -> np.ndarray:
    n = arrays.n_agents
    # agent i's own reward: minus the other agent's distance to i's goal_b (mpe2's goal_a, goal_b)
    own = np.array([-arrays.dist[n - 1 - i, n + arrays.goals[i]] for i in range(n)])
    global_reward = np.add.accumulate(own)[-1] / n  # mpe2: sum from 0 over agents, then the mean
    return global_reward * (1 - local_ratio) + own * local_ratio


def crypto_rewards(arrays: WorldArrays) -> np.ndarray:
    """mpe2's simple_crypto: a listener (eve, bob) that said anything is scored by the squared error
    between what it said and the message; eve gets minus hers, bob and alice eve's minus bob's."""
    message = arrays.colors[arrays.color_starts[arrays.n_agents + arrays.goals[0]]:
                            arrays.color_starts[arrays.n_agents + arrays.goals[0] + 1]]
    said = arrays.comm[:CRYPTO_SPEAKER]  # eve's and bob's
    errors = np.add.reduce(np.square(said - message), axis=1)  # np.sum's reduction, without its wrapper
    errors[~said.any(axis=1)] = 0.0  # a listener that said nothing (all zeros) is not scored
    eve, bob = errors
    rewards = np.full(arrays.n_agents, eve + -bob)  # mpe2: adv_rew (0 + eve's) + good_rew (0 - bob's)
    rewards[0] = -eve
    return rewards


def world_comm_rewards(arrays: WorldArrays) -> np.ndarray:
    """mpe2's simple_world_comm, its terms added one by one in its order (integers added to a float
    one at a time: (x + 5) + 5 is not always x + 10)."""
    good, adv, n = arrays.good, arrays.adversaries, arrays.n_agents
    caught = arrays.dist[good][:, adv] < arrays.size_sum[good][:, adv]  # (good, adversaries)
    rewards = np.empty(n)
    # an adversary: minus a tenth of the nearest good agent's distance, +5 for every catch by anyone
    chase = -(0.1 * arrays.dist[adv][:, good].min(axis=1))
    for _ in range(int(caught.sum())):
        chase = chase + 5
    rewards[adv] = chase
    # a good agent: -5 per adversary touching it, the boundary, +2 per food it is on, food distance
    penalty = _boundary_penalty(np.abs(arrays.pos[good]))
    own = ((-5.0 * caught.sum(axis=1)) - 2 * penalty[:, 0]) - 2 * penalty[:, 1]
    food = range(n + arrays.n_obstacles, len(arrays.pos) - arrays.n_forests)
    for f in food:
        own = own + np.where(arrays.dist[good, f] < arrays.size_sum[good, f], 2.0, 0.0)
    rewards[good] = own - 0.05 * arrays.dist[good][:, list(food)].min(axis=1)
    return rewards


@dataclass(frozen=True)
class ScenarioStep:
    observation: Callable[[Pieces, WorldArrays, int], list[int]]  # agent i's observation, as indices
    rewards: Callable[..., np.ndarray]  # (A,) float64; given the local ratio when mpe2 has one
    extras: Callable[[WorldArrays], np.ndarray] | None = None  # the scenario's own numbers of a step


SCENARIO_STEPS: dict[str, ScenarioStep] = {
    "simple_spread": ScenarioStep(spread_observation, spread_rewards),
    "simple_tag": ScenarioStep(tag_observation, tag_rewards),
    "simple_adversary": ScenarioStep(adversary_observation, adversary_rewards),
    "simple_push": ScenarioStep(push_observation, push_rewards),
    "simple": ScenarioStep(simple_observation, simple_rewards),
    "simple_speaker_listener": ScenarioStep(speaker_listener_observation, speaker_listener_rewards),
    "simple_crypto": ScenarioStep(crypto_observation, crypto_rewards),
    "simple_reference": ScenarioStep(reference_observation, reference_rewards),
    "simple_world_comm": ScenarioStep(world_comm_observation, world_comm_rewards, world_comm_extras),
}
