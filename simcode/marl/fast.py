"""Speed: how maddpg.py computes its math fast on a CPU, and keeps every agent's bits independent of
which other agents share its batch. maddpg.py calls these by name; each trick is here, with its why.

Speed:
- No autograd: the backward pass (StackedMLP.backward) is written out, so it skips what autograd
  would compute and throw away (the critic's one-output outer products, its gradient for every
  action column when the actor needs one agent's five).
- Scratch: intermediates go into tensors kept between calls. At batch 1024 the page faults of a
  fresh multi-megabyte tensor's first touch cost more than the matmul that fills it.
- The last layer is computed as W3 @ h2^T, (n, out, B): with few outputs it is twice as fast as
  h2 @ W3^T. A one-output layer's backward is a broadcast multiply, not a matmul.
- `softmax` by hand (torch.softmax is slow over 5 actions on CPU); `relu_backward` with aten's own
  kernel (masked_fill_ is 30x slower).
- Own observations as views when every agent's is the same size, else slice copies into zero padding
  kept between calls (OwnObservations).
- Logits stay on the output layer's layout (k, n, Amax, B), viewed transposed, target actions' too
  (forward_each): the softmax's elementwise passes over it are several times faster than over
  (..., B, Amax) with masks broadcast along a 5-long inner axis.
- Agents in memory-bounded groups of equal size (in_groups): a batched matmul splits a batch over
  threads, and equal groups keep every thread busy.
- Adam, clipping and the soft update run on each net's flat buffers (fast_adam.py, with its why);
  gradients are written into one (StackedMLP.gradients' `out`).
- Inference mode: an update computes under torch.inference_mode(), which skips autograd's
  bookkeeping of every view and in-place write (about 7% of an update at batch 1024, 15% at 8);
  the new state is allocated outside it (fast_adam.FlatState), so callers get ordinary tensors.

Bits (an agent's update must not depend on its company; tests/test_marl.py checks each):
- Batched matmuls (bmm) give each matrix of a batch the same kernel, as long as every weight is
  used as a transposed (out, in) matrix: MKL rounds a contiguous (in, out) operand differently in
  other company at most batch sizes (Actions.own_grad gathers its weights so).
- A lone agent is computed as a pair with itself: torch lets a batch of one use every thread, where
  MKL may split a contraction and round differently.
- Below SMALL_BATCH minibatch rows MKL rounds batched matmuls by their company: agents go one at a
  time (each as a pair, as above).
- Target actions are computed one minibatch at a time (StackedMLP.forward_each), so every matmul has
  the same shape whatever the group's size.
- Gradient norms are reduced one agent at a time (fast_adam.FlatNet.norms): a batched reduction may
  sum in a different order.
- A sum of 5 actions is rounded by its order: the target actions' softmax sums over contiguous
  actions, as when their logits were laid out (k, M, B, Amax) (Actions._action_sums, a copy); the
  agent's own, along B, as it always has.
- Weights start at 64-byte boundaries, as tensors of their own (state.FlatLayout): MKL may round a
  small matrix product differently at another alignment.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from simcode.marl.state import LAYERS, Layout

MAX_CHUNK_BYTES = 256 * 2**20  # agents are updated in groups whose scratch takes about this
SMALL_BATCH = 4  # below this many minibatch rows each agent is updated alone


class Scratch:
    """Intermediate float32 tensors kept between calls, by key and shape (see the module's notes).

    One `Update` owns one Scratch: not for concurrent use from several threads. A tensor stays valid
    until the next request of its key.
    """

    def __init__(self) -> None:
        self._tensors: dict[tuple, torch.Tensor] = {}

    def __call__(self, key: str, *shape: int) -> torch.Tensor:
        tensor = self._tensors.get((key, shape))
        if tensor is None:
            tensor = self._tensors[(key, shape)] = torch.empty(shape)
        return tensor


def softmax(x: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis (torch.softmax is slow over 5 actions on CPU)."""
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def relu_backward(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """In place: grad *= (out > 0), where out = relu(z) (aten's own kernel: masked_fill_ is 30x slower)."""
    return torch.ops.aten.threshold_backward.grad_input(grad, out, 0.0, grad_input=grad)


class StackedMLP:
    """Forward and backward passes of a stack of networks (leading axis: one network per agent), by
    the layer list of state.LAYERS, in scratch tensors named by a caller's key.

    Math of layer l (input x_l, weights W_l (out, in), z_l = x_l W_l^T + b_l, x_{l+1} = relu(z_l)
    except after the last): with d = dL/dz_l, dL/dW_l = d^T x_l, dL/db_l = sum over rows of d,
    dL/dx_l = d W_l and dL/dz_{l-1} = dL/dx_l * (x_l > 0).
    """

    def __init__(self, scratch: Scratch):
        self.scratch = scratch

    def forward(self, p: dict[str, torch.Tensor], net: str, inputs: tuple[torch.Tensor, ...], key: str,
                output: bool = True, out: torch.Tensor | None = None):
        """(output (n, B, out), hidden layers after ReLU [h1, h2]); `inputs` (n, B, in) are one per
        weight of the first layer (the critic's: observations, actions). Valid until the key's next use.
        Without `output` only the hidden layers (output None); `out` (n, out, B): where to write it."""
        *hidden_layers, ((out_weight,), out_bias) = LAYERS[net]
        n, b = inputs[0].shape[:2]
        hidden, x = [], inputs
        for depth, (weights, bias) in enumerate(hidden_layers, 1):
            h = self.scratch(f"{key}.h{depth}", n, b, p[f"{net}.{bias}"].shape[-1])
            # Last weight first (the critic's actions, then its observations): the order the
            # project's results were fixed with; the same math. baddbmm's out= copies the bias in
            # (broadcast), then adds the product as baddbmm_ does.
            (last, x_last), *others = reversed(list(zip(weights, x)))
            torch.baddbmm(p[f"{net}.{bias}"].unsqueeze(1), x_last, p[f"{net}.{last}"].transpose(1, 2), out=h)
            for weight, x_part in others:
                h.baddbmm_(x_part, p[f"{net}.{weight}"].transpose(1, 2))
            hidden.append(h.relu_())
            x = (h,)
        if not output:
            return None, hidden
        w_out = p[f"{net}.{out_weight}"]
        if out is None:
            out = self.scratch(f"{key}.out", n, w_out.shape[1], b)  # W3 @ h2^T: (n, out, B)
        torch.baddbmm(p[f"{net}.{out_bias}"].unsqueeze(-1), w_out, x[0].transpose(1, 2), out=out)
        return out.transpose(1, 2), hidden

    def forward_each(self, p: dict[str, torch.Tensor], net: str, inputs: torch.Tensor, key: str) -> torch.Tensor:
        """Outputs (k, n, B, out) of the same n networks on each of k minibatches `inputs` (k, n, B, in),
        one minibatch at a time: every matmul then has one shape whatever k. On the output layer's own
        layout (k, n, out, B), transposed, as `forward`'s (the softmax over actions is 5x faster on it)."""
        (k, n, b, _), (out_weight,) = inputs.shape, LAYERS[net][-1][0]
        outputs = self.scratch(f"{key}.outputs", k, n, p[f"{net}.{out_weight}"].shape[1], b)
        for r, x in enumerate(inputs):
            self.forward(p, net, (x,), f"{key}.each", out=outputs[r])
        return outputs.transpose(-1, -2)

    def backward(self, p: dict[str, torch.Tensor], net: str, hidden: list[torch.Tensor], d_out: torch.Tensor,
                 key: str) -> list[torch.Tensor]:
        """dL/dz of every hidden layer (first layer first), from d_out = dL/d output."""
        layers = LAYERS[net]
        d_pre = [None] * len(hidden)
        d_next = d_out
        for depth in range(len(hidden), 0, -1):
            (weight,), _ = layers[depth]  # the layer reading hidden layer `depth`
            w = p[f"{net}.{weight}"]
            d = self.scratch(f"{key}.d{depth}", *hidden[depth - 1].shape)
            if w.shape[1] == 1:  # one output: dL/dx is an outer product, cheaper as a broadcast multiply
                torch.mul(d_next, w, out=d)
            else:
                torch.bmm(d_next, w, out=d)  # dL/dx_l = d W_l
            d_pre[depth - 1] = d_next = relu_backward(d, hidden[depth - 1])  # * (x_l > 0)
        return d_pre

    def gradients(self, p: dict[str, torch.Tensor], net: str, inputs: tuple[torch.Tensor, ...],
                  hidden: list[torch.Tensor], d_out: torch.Tensor, key: str, out: list[torch.Tensor]) -> None:
        """Into `out`: dL/d(every tensor of `net`), in state.net_names order, from d_out = dL/d output."""
        d_pre = self.backward(p, net, hidden, d_out, key) + [d_out]
        layer_inputs = [inputs] + [(h,) for h in hidden]
        grads = iter(out)
        for xs, d in zip(layer_inputs, d_pre):
            for x in xs:
                torch.bmm(d.transpose(1, 2), x, out=next(grads))  # dL/dW_l = d^T x_l
            torch.sum(d, 1, out=next(grads))  # dL/db_l


class PerGroup:
    """Values made from a group of agents (rows of fixed index tables), kept by group: the same groups
    come back every update, and each lookup in a table is a torch call."""

    def __init__(self, make: Callable[[list[int] | None], object]):
        self._make, self._kept = make, {}

    def __call__(self, agents: list[int] | None):
        key = None if agents is None else tuple(agents)
        if key not in self._kept:
            self._kept[key] = self._make(agents)
        return self._kept[key]


class OwnObservations:
    """Each agent's own columns of the joint observations, padded to the longest (padding zero)."""

    def __init__(self, layout: Layout):
        self.n_agents, self.width = layout.n_agents, layout.obs_max
        self.same_size = len(set(layout.shapes.obs_dims)) == 1
        self.blocks = list(zip(layout.obs_offsets, layout.shapes.obs_dims))  # each agent's (first column, size)
        self._padded: dict[tuple, torch.Tensor] = {}

    def _zero_padded(self, key: str, *shape: int) -> torch.Tensor:
        """A tensor kept between calls whose padding, zeroed once, is never written (the real columns
        are all rewritten each call): a fresh zeroed tensor costs more than the copies that fill it."""
        tensor = self._padded.get((key, shape))
        if tensor is None:
            tensor = self._padded[(key, shape)] = torch.zeros(shape)
        return tensor

    def of_every_agent(self, obs: torch.Tensor) -> torch.Tensor:
        """(k, B, S) joint observations -> (k, M, B, Dmax), valid until the next call."""
        if self.same_size:
            return obs.view(*obs.shape[:2], self.n_agents, -1).transpose(1, 2)  # no padding: a view
        # a slice copy per agent: indexing the columns with a table is 10x slower
        k, b = obs.shape[:2]
        out = self._zero_padded("every", k, self.n_agents, b, self.width)
        for i, (start, size) in enumerate(self.blocks):
            out[:, i, :, :size] = obs[:, :, start:start + size]
        return out

    def of_rows(self, obs: torch.Tensor, agents: list[int]) -> torch.Tensor:
        """(k, B, S) -> (k, B, Dmax): row r's own observation of agent agents[r]."""
        d = self.width
        if self.same_size and agents == list(range(agents[0], agents[0] + len(agents))):
            # Row r's block starts d columns further on than row r - 1's: a strided view, no copy.
            st = obs.stride()
            return obs.as_strided((*obs.shape[:2], d), (st[0] + d * st[2], st[1], st[2]),
                                  obs.storage_offset() + agents[0] * d * st[2])
        # a slice copy per row into zero padding (written once: kept by the rows' sizes, so that a row's
        # padding is never written): gathering by a table is 10x slower
        out = self._zero_padded(f"rows{[self.blocks[j][1] for j in agents]}", *obs.shape[:2], d)
        for r, j in enumerate(agents):
            start, size = self.blocks[j]
            out[r, :, :size] = obs[r, :, start:start + size]
        return out


class Actions:
    """Agents' actions: a softmax per categorical component, and each agent's columns of the joint
    action. An agent's action is padded to the longest (Amax); when every agent has one component of
    the same size (no padding) these are plain views and one softmax, else masks (state.Layout's
    part_masks) pick each component out of the padded width: the work then has the same shape for an
    agent whatever its company, so its bits do not depend on it either."""

    def __init__(self, layout: Layout):
        self.one_part_each, self.width = layout.one_part_each, layout.act_max
        self.masks = layout.part_masks  # (K, M, Amax)
        self.one_part_per_agent = len(self.masks) == 1  # of any size: every agent has component 0
        self.outside = torch.zeros_like(self.masks).masked_fill_(self.masks == 0, -torch.inf)  # 0 on, -inf off
        self.real = self.masks.sum(0)  # (M, Amax): 1 on an agent's columns, 0 on padding
        self.offsets, self.sizes = layout.act_offsets, layout.shapes.act_dims
        # agent i's column c sits at c + offsets[i] of the joint action (padding reads column 0)
        self.cols = ((torch.arange(self.width) + torch.tensor(self.offsets).unsqueeze(1)) * self.real).long()
        self._own = PerGroup(lambda agents: (self.cols[agents].unsqueeze(-1), self.real[agents].unsqueeze(-1)))
        self._outside_rows = PerGroup(lambda agents: self._per_row(self.outside, agents))
        self._mask_rows = PerGroup(lambda agents: self._per_row(self.masks, agents))

    def softmax(self, x: torch.Tensor, agents: list[int] | None = None) -> torch.Tensor:
        """Softmax of each component of `x` (..., Amax), zero on padding: x (k, M, B, Amax), every
        agent's, or (with `agents`) x (k, B, Amax), row r agent agents[r]'s."""
        if self.one_part_each and agents is not None:
            return softmax(x)
        # On the logits' own layout (..., Amax, B) (StackedMLP's outputs are W3 @ h2^T): the sums and
        # maxima over actions then run along contiguous rows of B (over Amax they are 10x slower).
        xt = x.transpose(-1, -2)
        out = None
        for outside in self._outside_rows(agents).transpose(-1, -2):  # 0 on the component, -inf off
            masked = xt if self.one_part_each else xt + outside
            top = masked.amax(-2, keepdim=True)  # the component's max
            if not self.one_part_per_agent:
                top.clamp_(min=-1e30)  # an agent without this component: -1e30
            e = (xt - top if masked is xt else masked.sub_(top)).exp_()  # 0 outside the component
            total = self._action_sums(e, every_agent=agents is None)  # >= 1 (its max's exp), or 0: no component
            part = e.div_(total if self.one_part_per_agent else total.clamp_(min=1.0))
            out = part if out is None else out.add_(part)  # 0 + y is y: the first needs no zeros to add to
        return out.transpose(-1, -2)

    @staticmethod
    def _action_sums(e: torch.Tensor, every_agent: bool) -> torch.Tensor:
        """Sums of e (..., Amax, B) over actions, (..., 1, B). Every agent's (target actions) in the order
        of a sum over contiguous actions: their results were fixed with target logits laid out
        (k, M, B, Amax), and a sum of 5 is rounded by its order (a copy costs less than the slow layout)."""
        if every_agent:
            return e.transpose(-1, -2).contiguous().sum(-1).unsqueeze(-2)
        return e.sum(-2, keepdim=True)

    def softmax_backward(self, a: torch.Tensor, d_a: torch.Tensor, agents: list[int]) -> torch.Tensor:
        """dL/dx from d_a = dL/da, a = softmax(x, agents): per component the Jacobian diag(a_c) - a_c a_c^T,
        so a * (d_a - <a_c, d_a>) on component c's columns."""
        if self.one_part_per_agent:  # one component: a is 0 on padding, so <a, d_a> is over the component
            return a * (d_a - (a * d_a).sum(-1, keepdim=True))
        a_d = a * d_a
        inner = sum(mask * (a_d * mask).sum(-1, keepdim=True) for mask in self._mask_rows(agents))
        return a * (d_a - inner)

    @staticmethod
    def _per_row(masks: torch.Tensor, agents: list[int] | None) -> torch.Tensor:
        """(K, M, Amax) masks -> (K, 1, M, 1, Amax) for every agent's x, or (K, k, 1, Amax) for agents' rows."""
        if agents is None:
            return masks.unsqueeze(2)[:, None]
        return masks[:, agents].unsqueeze(2)

    def joint(self, acts: torch.Tensor) -> torch.Tensor:
        """(k, M, B, Amax) every agent's actions -> (k, B, sum of action sizes), the joint action."""
        k, m, b = acts.shape[:3]
        if self.one_part_each:
            return acts.transpose(1, 2).reshape(k, b, m * self.width)
        joint = torch.empty((k, b, sum(self.sizes)))
        for i, (start, size) in enumerate(zip(self.offsets, self.sizes)):  # a slice copy each (see of_every_agent)
            joint[:, :, start:start + size] = acts[:, i, :, :size]
        return joint

    def with_own(self, joint: torch.Tensor, own: torch.Tensor, agents: list[int], out: torch.Tensor) -> torch.Tensor:
        """`out` (k, B, S) = the joint actions with row r's agent agents[r]'s replaced by own[r] (k, B, Amax)."""
        out.copy_(joint)
        for r, j in enumerate(agents):
            out[r, :, self.offsets[j]:self.offsets[j] + self.sizes[j]] = own[r, :, :self.sizes[j]]
        return out

    def own_grad(self, d_first: torch.Tensor, w_act: torch.Tensor, agents: list[int]) -> torch.Tensor:
        """d_first (k, B, H) @ (row r's agent's action columns of w_act (k, H, S)) -> (k, B, Amax), zero
        on padding. The columns are gathered as (k, Amax, H) and used transposed, as every weight here
        (see Bits)."""
        cols, real = self._own(agents)
        own = torch.gather(w_act.transpose(1, 2), 1, cols.expand(-1, -1, w_act.shape[1])).contiguous()
        if not self.one_part_each:
            own.mul_(real)
        return torch.bmm(d_first, own.transpose(1, 2))


def rows(agents: list[int]) -> slice | torch.Tensor:
    """Index of `agents` on a leading agent axis: a run of consecutive agents is a view, not a copy."""
    if agents == list(range(agents[0], agents[-1] + 1)):
        return slice(agents[0], agents[-1] + 1)
    return torch.tensor(agents, dtype=torch.long)


def scratch_bytes_per_agent(layout: Layout, batch_rows: int) -> int:
    """About what one agent's update keeps in scratch: target and policy actions and their noise, the
    hidden layers of three networks and their gradients, padded observations if sizes differ."""
    s = layout.shapes
    padded = 0 if len(set(s.obs_dims)) == 1 else 2 * s.n_agents * layout.obs_max
    padded += s.n_agents * (layout.act_max - min(s.act_dims))
    return 4 * batch_rows * (4 * s.act_total + 24 * s.hidden + padded)


def in_groups(agents: list[int], batch_rows: int, bytes_per_agent: int,
              update_group: Callable[[list[int]], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """`update_group` over `agents` in groups of equal size and bounded scratch, stacked in order."""
    groups = -(-len(agents) // max(2, MAX_CHUNK_BYTES // bytes_per_agent))
    size = 1 if batch_rows < SMALL_BATCH else -(-len(agents) // groups)
    parts = []
    for start in range(0, len(agents), size):
        group = agents[start:start + size]
        if len(group) == 1:  # a lone agent as a pair with itself (see Bits)
            parts.append({n: t[:1] for n, t in update_group(group * 2).items()})
        else:
            parts.append(update_group(group))
    if len(parts) == 1:
        return parts[0]
    return {n: torch.cat([part[n] for part in parts]) for n in parts[0]}
