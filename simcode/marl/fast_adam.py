"""Speed of Adam, clipping and the soft update (maddpg.adam_clip, Update.soft_update): each part of a
net (its parameters, target network, Adam's two moments, its gradient) as one flat buffer.

Why: these steps are a dozen elementwise operations on each of a net's tensors (7 for the critic, 6
for the actor). The tensors are small, so run one tensor at a time their cost is the number of torch
calls, not the arithmetic; joining the tensors into one (torch.cat) and splitting them again costs
calls and copies too. On one flat buffer each operation is one call for the whole net.

The flat layout (state.FlatLayout): a whole state is one buffer, its tensors one after the other in
Layout.names order, each stacked over agents, (k, ...), each starting at a 64-byte boundary as a tensor
of its own would (MKL may round a small matrix product differently at another alignment); a part of
a net is then one block of it. Tensor-major, not agent-major: every tensor is a contiguous view, so
the matmuls that read the weights (and acting's numpy) see the memory they saw as separate tensors.
Their bits depend on layout; elementwise bits do not (an element's result does not depend on where
it sits, vectorized or not: tests/test_fast_adam.py checks the kernels used). The states
`Layout.initial_state` and `unpack` make, and those `Update` returns (FlatState: allocated once, every
step writes its block with out=), are in this layout; a state in another (a subset of agents' rows,
tensors from elsewhere) is joined into it by a copy (FlatLayout.of), with the same bits.

- Gradients are written (out=) into views of one buffer kept between calls: no join.
- Per-agent and per-variable factors (the clip scale, Adam's bias corrections) become one value per
  element through a precomputed index (a bias correction the same for every agent stays one value).
- Clip norms stay each agent's own vector norm of each tensor (see fast.py's Bits), as one
  _foreach_norm call over every agent's piece of every tensor (contiguous 1-D slices of the gradient
  buffer); a two-tensor variable's norm is linalg.vector_norm of its two norms, one agent at a time.
"""

from __future__ import annotations

import math

import torch

from simcode.marl.state import LAYERS, PARTS, FlatLayout, Layout, net_names


class FlatNet:
    """A net's flat buffers for k agents: their layout, the gradient buffer, norms, per-element factors.

    `shapes`: each tensor's shape for one agent (net_names order); `groups`: the clip's variables as
    lists of tensor indices (maddpg.clip_groups). One FlatNet belongs to one `Update` (its gradient
    buffer is reused by every call)."""

    def __init__(self, shapes: list[tuple[int, ...]], groups: list[list[int]], k: int):
        self.k = k
        self.layout = FlatLayout([(k, *shape) for shape in shapes])
        self.size = self.layout.size
        self.grad = torch.zeros(self.size)  # its gaps stay zero
        self.grads = self.layout.views(self.grad)  # the gradient of each tensor, (k, ...)
        per_agent = [math.prod(shape) for shape in shapes]
        # agent i's piece of tensor t, at t * k + i
        self._pieces = [self.grad.narrow(0, offset + i * n, n)
                        for offset, n in zip(self.layout.offsets, per_agent) for i in range(k)]
        self._group_sizes = [len(group) for group in groups]
        group_of = {t: g for g, group in enumerate(groups) for t in group}
        # element -> its agent, and its (variable, agent) entry of a (G, k) table (gaps: entry 0)
        self._agent = torch.zeros(self.size, dtype=torch.long)
        self._variable = torch.zeros(self.size, dtype=torch.long)
        for t, (offset, n) in enumerate(zip(self.layout.offsets, per_agent)):
            agents = torch.arange(k).repeat_interleave(n)
            self._agent[offset:offset + k * n] = agents
            self._variable[offset:offset + k * n] = group_of[t] * k + agents

    def of(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """The flat buffer of the net's `tensors` (k, ...): a view when they are laid out so (read it,
        never write it), else a copy (FlatLayout.of)."""
        return self.layout.of(tensors)

    def norms(self) -> torch.Tensor:
        """(G, k): agent i's norm of variable g of the gradient buffer `grad`, one agent at a time (see the
        module's notes)."""
        norms = torch.stack(torch._foreach_norm(self._pieces)).view(-1, self.k)  # (tensors, k)
        if max(self._group_sizes) == 1:
            return norms
        rows = []
        for size, part in zip(self._group_sizes, norms.split_with_sizes(self._group_sizes)):
            if size > 1:  # each agent's norm of its tensors' norms, as a 1-D tensor of its own
                part = torch.stack(torch._foreach_norm(part.t().contiguous().unbind(0))).unsqueeze(0)
            rows.append(part)
        return torch.cat(rows)

    def each_variable(self, table: torch.Tensor) -> torch.Tensor:
        """(G, k) values per variable and agent -> the value of each element of a flat buffer."""
        return table.reshape(-1).index_select(0, self._variable)

    def each_agent(self, values: torch.Tensor) -> torch.Tensor:
        """(k,) values per agent -> the value of each element of a flat buffer (one value, (1,), when
        every agent has the same: it broadcasts)."""
        first, *others = values.tolist()
        if all(v == first for v in others):
            return values[:1]
        return values.index_select(0, self._agent)


class FlatState:
    """New stacked states of k agents in the flat layout: the whole state one buffer, in Layout.names
    order (as Layout.zeros), its tensors as views by name, and the block of each part of each net."""

    def __init__(self, layout: Layout, k: int):
        self.names = layout.names
        self.layout = FlatLayout([(k, *layout.param_shapes[n]) for n in self.names])
        # each (part, net)'s block: from its first tensor to the end of its last, and the step count's
        blocks = [(part, net) for part in PARTS for net in LAYERS] + ["step"]
        names = [[part + n for n in net_names(net)] for part, net in blocks[:-1]] + [["step"]]
        assert [n for block in names for n in block] == self.names
        index = {n: i for i, n in enumerate(self.names)}
        starts = [self.layout.offsets[index[block[0]]] for block in names]
        ends = [self.layout.offsets[index[block[-1]]] + self.layout.numels[index[block[-1]]] for block in names]
        self._blocks = blocks
        self._sizes = [size for start, end, before in zip(starts, ends, [0] + ends[:-1])
                       for size in (start - before, end - start)]  # gap, block, gap, block...

    def new(self) -> tuple[dict[str, torch.Tensor], dict]:
        """An uninitialized state: its tensors by name, and the flat block of each (part, net) and of
        "step" (views of one buffer: writing a block writes the tensors)."""
        buffer = torch.empty(self.layout.size)
        with torch.inference_mode():  # views of an ordinary tensor made so are ordinary, and made faster
            tensors = dict(zip(self.names, self.layout.views(buffer)))
            return tensors, dict(zip(self._blocks, buffer.split_with_sizes(self._sizes)[1::2]))
