"""Agents' states as stacked tensors (one leading agent axis) and as flat float32 vectors.

Every parameter tensor is stacked over agents, padded to a common shape: actor inputs are padded to
the largest observation, actor outputs to the longest action (the padded logits are zero and so
are their actions), and a ddpg (local) critic uses the centralized critic's input layout with
only its own observation and action rows real. Padded entries are zero, get zero gradient and so
stay zero; the flat vector of an agent holds only its real entries (row-major, in `names` order),
so pack/unpack is an exact round trip.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from simcode.marl.envs import MaddpgShapes

# Both networks are three dense layers, ReLU after the first two: per layer, its weight tensors (one
# per input, each (out, in) as nn.Linear) and its bias. The critic's first layer reads the
# observations and the actions: one layer of the reference, stored as two tensors. Every forward
# pass (the update's, acting's) walks this list, and the flat state follows its order.
LAYERS = {
    "actor": ((("W1",), "b1"), (("W2",), "b2"), (("W3",), "b3")),
    "critic": ((("W1o", "W1a"), "b1"), (("W2",), "b2"), (("W3",), "b3")),
}
PARTS = ("", "target_", "m_", "v_")  # parameters, target networks, Adam first and second moments


def net_names(net: str) -> list[str]:
    """Tensor names of `net` in layer order: each layer's weights, then its bias."""
    return [f"{net}.{name}" for weights, bias in LAYERS[net] for name in (*weights, bias)]


ALIGN = 16  # floats (64 bytes): where torch's allocator starts a tensor of its own


class FlatLayout:
    """Tensors of `shapes` one after the other in one 1-D float32 buffer (fast_adam's flat layout), each
    starting at a multiple of ALIGN floats as a tensor of its own would: MKL may round a small matrix
    product differently at another alignment. The gaps between them hold nothing (zeros in `zeros`)."""

    def __init__(self, shapes: list[tuple[int, ...]]):
        self.shapes = shapes
        self.numels = [math.prod(shape) for shape in shapes]
        self.offsets, at = [], 0
        for n in self.numels:
            at = -(-at // ALIGN) * ALIGN
            self.offsets.append(at)
            at += n
        self.size = at
        # Templates of the gaps and the tensors, in order (sizes only: expanded, no memory), for views
        # made by one call, and the zero gaps of a joined copy
        ends = [0] + [o + n for o, n in zip(self.offsets, self.numels)]
        gaps = [o - end for o, end in zip(self.offsets, ends)]
        self._templates, self._at, self._pads = [], [], []
        for gap, shape in zip(gaps, shapes):
            if gap:
                self._templates.append(torch.zeros(()).expand(gap))
            self._at.append(len(self._templates))
            self._templates.append(torch.zeros(()).expand(shape))
            self._pads.append(torch.zeros(gap))

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """The tensors in the 1-D `flat`, as views (one call: a view costs microseconds in Python)."""
        views = torch._utils._unflatten_dense_tensors(flat, self._templates)
        return [views[i] for i in self._at]

    def zeros(self) -> list[torch.Tensor]:
        """Zero tensors, views of one new buffer."""
        return self.views(torch.zeros(self.size))

    def of(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """The flat buffer of `tensors`: the block of a buffer whose views they are, laid out as here
        (a view: read it, never write it), or else a new copy of them (one call)."""
        first = tensors[0]
        base, start = first._base, first.storage_offset()
        if base is not None and base.dim() == 1 and base.is_contiguous():
            for t, offset, n in zip(tensors, self.offsets, self.numels):
                if t._base is not base or t.storage_offset() != start + offset or t.numel() != n \
                        or not t.is_contiguous():
                    break
            else:
                return base.narrow(0, start - base.storage_offset(), self.size)
        return torch.cat([x for pad, t in zip(self._pads, tensors) for x in (pad, t.reshape(-1))])


def actor_logits_numpy(params: dict[str, np.ndarray], own_obs: np.ndarray) -> np.ndarray:
    """Every agent's actor on one observation each: params["actor.W1"] (M, H, Dmax) etc., own_obs
    (M, Dmax) padded -> logits (M, A). The update's batched torch forward (fast.StackedMLP) computes
    the same layers; acting uses numpy because tiny torch matmuls cost a thread-pool entry each."""
    *hidden_layers, (out_weights, out_bias) = LAYERS["actor"]
    x = own_obs
    for (weight,), bias in hidden_layers:
        x = np.maximum(np.einsum("mhd,md->mh", params[f"actor.{weight}"], x) + params[f"actor.{bias}"], 0.0)
    return np.einsum("mad,md->ma", params[f"actor.{out_weights[0]}"], x) + params[f"actor.{out_bias}"]


@dataclass
class Layout:
    """Stacked shapes, masks of real entries and the flat order of one MADDPG problem."""

    shapes: MaddpgShapes
    names: list[str] = field(init=False)
    param_shapes: dict[str, tuple[int, ...]] = field(init=False)
    real: dict[str, torch.Tensor] = field(init=False)  # name -> (M, numel) bool
    obs_offsets: list[int] = field(init=False)
    own_obs_cols: torch.Tensor = field(init=False)  # (M, Dmax): agent i's columns in the joint obs
    own_obs_mask: torch.Tensor = field(init=False)  # (M, Dmax): 1 on real columns, 0 on padding
    act_offsets: list[int] = field(init=False)  # agent i's first column in the joint action
    # (K, M, Amax): part_masks[c, i] is 1 on the columns of agent i's c-th action component (none
    # when it has fewer than c + 1), K the most components an agent has; padding is in none.
    part_masks: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        s = self.shapes
        h, a, m = s.hidden, self.act_max, s.n_agents
        self.act_offsets = list(np.cumsum((0,) + s.act_dims[:-1]))
        self.part_masks = torch.zeros((max(map(len, s.act_parts)), m, a))
        for i, parts in enumerate(s.act_parts):
            for c, end in enumerate(np.cumsum(parts)):
                self.part_masks[c, i, end - parts[c]:end] = 1.0
        self.obs_offsets = list(np.cumsum((0,) + s.obs_dims[:-1]))
        # Padding reads column 0 and is masked to zero.
        self.own_obs_cols = torch.zeros((m, self.obs_max), dtype=torch.long)
        self.own_obs_mask = torch.zeros((m, self.obs_max))
        for i, (off, d) in enumerate(zip(self.obs_offsets, s.obs_dims)):
            self.own_obs_cols[i, :d] = torch.arange(off, off + d)
            self.own_obs_mask[i, :d] = 1.0
        # Weights are (out, in), as nn.Linear: the fast layout for CPU matmuls with few outputs.
        base = {
            "actor.W1": (h, self.obs_max), "actor.b1": (h,), "actor.W2": (h, h), "actor.b2": (h,),
            "actor.W3": (a, h), "actor.b3": (a,),
            "critic.W1o": (h, s.obs_total), "critic.W1a": (h, s.act_total), "critic.b1": (h,),
            "critic.W2": (h, h), "critic.b2": (h,), "critic.W3": (1, h), "critic.b3": (1,),
        }
        self.param_shapes = {}
        for part in PARTS:
            for name, shape in base.items():
                self.param_shapes[part + name] = shape
        self.param_shapes["step"] = (1,)
        self.names = list(self.param_shapes)
        self.real = {}
        for name, shape in self.param_shapes.items():
            mask = torch.ones((m, *shape), dtype=torch.bool)
            base_name = name.split("_", 1)[1] if name.startswith(("target_", "m_", "v_")) else name
            for j in range(m):
                if base_name == "actor.W1":
                    mask[j, :, s.obs_dims[j]:] = False
                elif base_name in ("actor.W3", "actor.b3"):
                    mask[j, s.act_dims[j]:] = False
                elif base_name == "critic.W1o" and s.local_critic[j]:
                    mask[j] = False
                    mask[j, :, self.obs_offsets[j]:self.obs_offsets[j] + s.obs_dims[j]] = True
                elif base_name == "critic.W1a" and s.local_critic[j]:
                    mask[j] = False
                    mask[j, :, self.own_act(j)] = True
            self.real[name] = mask.reshape(m, -1)
        self._index = [[self.real[n][j].nonzero().squeeze(1) for n in self.names] for j in range(m)]
        sizes = [sum(len(i) for i in idx) for idx in self._index]
        assert sizes == s.state_sizes, (sizes, s.state_sizes)

    @property
    def obs_max(self) -> int:
        return max(self.shapes.obs_dims)

    @property
    def act_max(self) -> int:
        return max(self.shapes.act_dims)

    @property
    def one_part_each(self) -> bool:
        """Every agent's action is one categorical of the same size (no padding, one softmax)."""
        return all(parts == (self.act_max,) for parts in self.shapes.act_parts)

    def own_act(self, j: int) -> slice:
        """Agent j's columns in the joint action."""
        return slice(self.act_offsets[j], self.act_offsets[j] + self.shapes.act_dims[j])

    @property
    def n_agents(self) -> int:
        return self.shapes.n_agents

    # ------------------------------------------------------------------ flat <-> stacked

    @functools.cached_property
    def flat_layout(self) -> FlatLayout:
        """The flat layout of every agent's stacked state, in `names` order."""
        return FlatLayout([(self.n_agents, *self.param_shapes[n]) for n in self.names])

    def zeros(self) -> dict[str, torch.Tensor]:
        """Every agent's stacked state, zero, as views of one buffer in `names` order (a FlatLayout: a
        part of a net is then one block of it)."""
        return dict(zip(self.names, self.flat_layout.zeros()))

    def pack(self, state: dict[str, torch.Tensor], agents: list[int]) -> list[np.ndarray]:
        """Flat float32 vectors of `agents`; `state` holds the stacked tensors of exactly these agents."""
        out = []
        for row, j in enumerate(agents):
            parts = [state[n][row].reshape(-1)[idx] for n, idx in zip(self.names, self._index[j])]
            out.append(torch.cat(parts).numpy().copy())
        return out

    def unpack(self, flats: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Stacked tensors of all agents from their flat vectors (padding set to zero)."""
        m = self.n_agents
        if len(flats) != m:
            raise ValueError(f"expected {m} agent states, got {len(flats)}")
        state = self.zeros()
        rows = {n: t.view(m, -1) for n, t in state.items()}
        for j, vec in enumerate(flats):
            vec = torch.as_tensor(np.asarray(vec, dtype=np.float32))
            if vec.shape != (self.shapes.state_sizes[j],):
                raise ValueError(f"agent {j}: state of shape {tuple(vec.shape)}, "
                                 f"expected ({self.shapes.state_sizes[j]},)")
            at = 0
            for name, idx in zip(self.names, self._index[j]):
                rows[name][j, idx] = vec[at:at + len(idx)]
                at += len(idx)
        return state

    # ------------------------------------------------------------------ initial state

    def initial_state(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Glorot-uniform weights and zero biases (tf.layers defaults, as the reference), targets = copies."""
        s, m = self.shapes, self.n_agents
        state = self.zeros()
        h = s.hidden
        for j in range(m):
            def glorot(fan_in: int, fan_out: int) -> torch.Tensor:  # (out, in)
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                return torch.from_numpy(rng.uniform(-limit, limit, (fan_out, fan_in)).astype(np.float32))

            state["actor.W1"][j, :, :s.obs_dims[j]] = glorot(s.obs_dims[j], h)
            state["actor.W2"][j] = glorot(h, h)
            state["actor.W3"][j, :s.act_dims[j]] = glorot(h, s.act_dims[j])
            w1 = glorot(s.critic_in(j), h)
            if s.local_critic[j]:
                d, off = s.obs_dims[j], self.obs_offsets[j]
                state["critic.W1o"][j, :, off:off + d] = w1[:, :d]
                state["critic.W1a"][j, :, self.own_act(j)] = w1[:, d:]
            else:
                state["critic.W1o"][j] = w1[:, :s.obs_total]
                state["critic.W1a"][j] = w1[:, s.obs_total:]
            state["critic.W2"][j] = glorot(h, h)
            state["critic.W3"][j] = glorot(h, 1)
        for name in list(state):
            if name.startswith(("actor.", "critic.")):
                state["target_" + name].copy_(state[name])
        return state
