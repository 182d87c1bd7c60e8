"""Stacked networks with flat parameters: many same-shaped MLPs as one tensor, updated in place.

The fast path of the network-based algorithms. ``G`` member networks (one per agent, or per agent and
critic) of one shape keep all their parameters in one tensor ``flat[G, P]``: row ``g`` is member
``g``'s weights and biases, layer after layer, optionally followed by ``extra`` free parameters (a
Gaussian policy's log-stds). Inputs are *agent-major*, ``x[G, N, in]`` (``N`` samples per member),
so every layer is one ``baddbmm`` over all members, with no Python loop over agents.

Because a member's parameters are one row, per-member optimiser work is row-wise arithmetic:

* :func:`adam_rows_` — Adam (Kingma & Ba 2015) on rows ``[k, P]`` with one step count and one
  gradient-norm clip per row, exactly as if each member had its own ``torch.optim.Adam`` after
  ``clip_grad_norm_`` of its own parameters;
* :class:`StackedAdam` — that state (moments ``[G, P]``, step counts ``[G]``) for a whole stack, and
  :meth:`StackedAdam.rows` / :meth:`StackedAdam.put_rows` to update any subset of members (a stage
  of the sequential κ-hop scheme) on a gathered working copy that costs only what the subset costs.

Gaussian and categorical log-probabilities and entropies are written in closed form over padded
action dimensions (:func:`gaussian_log_prob`, :func:`gaussian_entropy`, :func:`categorical_log_prob`,
:func:`categorical_entropy`), so no ``torch.distributions`` object is built in the hot loop.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "NeighbourhoodMLP", "StackedAdam", "StackedMLP", "adam_rows_", "categorical_entropy", "categorical_log_prob",
           "gaussian_entropy", "gaussian_log_prob"]

#: name → activation, in place where its backward needs only its output (the output of ``baddbmm`` is not
#: needed by its own backward); SiLU's backward reads its input, so it makes a new tensor
ACTIVATIONS = {"relu": torch.relu_, "tanh": torch.tanh_, "silu": torch.nn.functional.silu}
_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}
_LOG_2PI = math.log(2.0 * math.pi)


def orthogonal_stack(members: int, rows: int, cols: int, gain: float = 1.0, chunk: int = 512) -> torch.Tensor:
    """``[members, rows, cols]``: an independent (semi-)orthogonal matrix per member, as
    ``nn.init.orthogonal_`` draws it (QR of a Gaussian matrix, signs fixed by ``R``'s diagonal), in
    batched QRs of ``chunk`` members: thousands of members cost one call each, not one call per member."""
    out = torch.empty(members, rows, cols)
    for a in range(0, members, chunk):
        k = min(chunk, members - a)
        g = torch.randn(k, rows, cols)
        if rows < cols:
            g = g.transpose(1, 2)
        q, r = torch.linalg.qr(g)
        q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
        out[a:a + k] = (q.transpose(1, 2) if rows < cols else q) * gain
    return out


class StackedMLP(nn.Module):
    """``G`` MLPs ``in → hidden… → out`` with their parameters as rows of ``flat[G, P + extra]``.

    ``forward(x[G, N, in])`` → ``[G, N, out]``. ``forward(x, params)`` runs the same layers with
    other rows (``params[k, P + extra]``, e.g. a stage's working copy) on ``x[k, N, in]``. One row of
    parameters (``members=1``: parameter sharing) serves any number of agents' inputs ``x[k, N, in]``.
    Initialisation: orthogonal weights per member (gain √2, output layer ``out_gain``), zero biases.
    """

    def __init__(self, members: int, in_features: int, hidden: Sequence[int], out_features: int, *,
                 activation: str = "relu", out_gain: float = 1.0, extra: int = 0) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        sizes = [in_features, *hidden, out_features]
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.activation = activation
        self._act = ACTIVATIONS[activation]
        self.layers: list[tuple[int, int, int, int]] = []       # (weight offset, bias offset, in, out)
        off = 0
        for a, b in zip(sizes[:-1], sizes[1:]):
            self.layers.append((off, off + a * b, a, b))
            off += a * b + b
        self.n_params = off                                       # P: the network's own parameters
        self.extra = extra
        flat = torch.zeros(members, off + extra)
        for k, (wo, bo, a, b) in enumerate(self.layers):
            gain = out_gain if k == len(self.layers) - 1 else math.sqrt(2.0)
            flat[:, wo:bo] = orthogonal_stack(members, a, b, gain).reshape(members, -1)
        self.flat = nn.Parameter(flat)

    def weight(self, layer: int, params: torch.Tensor | None = None) -> torch.Tensor:
        """``[G, in, out]`` view of one layer's weights."""
        p = self.flat if params is None else params
        wo, bo, a, b = self.layers[layer]
        return p[:, wo:bo].view(p.shape[0], a, b)

    def bias(self, layer: int, params: torch.Tensor | None = None) -> torch.Tensor:
        """``[G, out]`` view of one layer's biases."""
        p = self.flat if params is None else params
        _, bo, _, b = self.layers[layer]
        return p[:, bo:bo + b]

    def extras(self, params: torch.Tensor | None = None) -> torch.Tensor:
        """``[G, extra]``: the free parameters after the network's own."""
        p = self.flat if params is None else params
        return p[:, self.n_params:]

    def member(self, g: int) -> nn.Sequential:
        """Member ``g`` as an ordinary ``nn.Sequential`` of ``nn.Linear`` layers (a copy): e.g. to deploy
        one agent's network on its own."""
        layers: list[nn.Module] = []
        for k, (_, _, a, b) in enumerate(self.layers):
            lin = nn.Linear(a, b)
            with torch.no_grad():
                lin.weight.copy_(self.weight(k)[g].T)
                lin.bias.copy_(self.bias(k)[g])
            layers += [lin, _MODULES[self.activation]()]
        return nn.Sequential(*layers[:-1])

    def forward(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        p = self.flat if params is None else params
        G = p.shape[0]
        if x.dim() != 3 or (x.shape[0] != G and G != 1) or x.shape[2] != self.in_features:
            raise ValueError(f"expected input [{G}, N, {self.in_features}], got {tuple(x.shape)}")
        if G == 1 and x.shape[0] != 1:              # one shared network: all agents' samples as one batch
            k, N = x.shape[:2]
            return self.layers_from(0, x.reshape(1, k * N, -1).transpose(1, 2), p).view(k, N, -1)
        return self.layers_from(0, x.transpose(1, 2), p)

    def layers_from(self, start: int, z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Layers ``start, start + 1, …`` on *feature-major* activations ``z[G, d, N]``; returns ``[G, N, out]``.

        Feature-major keeps every product a plain ``W^T z`` with no copies between layers (the
        weights' transposes are views that BLAS reads directly).
        """
        G, last = p.shape[0], len(self.layers) - 1
        for k in range(start, last + 1):
            wo, bo, a, b = self.layers[k]
            z = torch.baddbmm(p[:, bo:bo + b].unsqueeze(2), p[:, wo:bo].view(G, a, b).transpose(1, 2), z)
            if k < last:
                z = self._act(z)
        return z.transpose(1, 2)


class NeighbourhoodMLP(StackedMLP):
    """Agent ``i``'s MLP reads the observations of its neighbourhood: ``x[N, n, o]`` (sample-major) of
    agents ``idx[i, 0..K-1]`` (real where ``mask``), slot after slot, padded slots zero.

    Parameters are those of a :class:`StackedMLP` with input ``K·o`` (slot order), so both ways of
    computing the first layer are the same function of the same parameters:

    * *gathered*: each agent's ``K·o`` inputs copied out (``[n, N, K·o]``) and one ``baddbmm``;
      memory and work grow with ``n·K`` (large graphs);
    * *dense*: the first layers of all agents as one ``[n·o, n·h]`` matrix assembled from the
      parameters (non-neighbours' blocks masked to zero), applied to the un-gathered ``[N, n·o]``
      observations in one GEMM: no gathered copies, a larger and faster matrix product (small graphs
      whose neighbourhoods cover much of the graph; chosen when ``n·o ≤ 2048`` and ``2K ≥ n``).

    ``share_input(x)`` prepares an input once for several networks with the same neighbourhoods.
    ``shared=True``: one network (one parameter row) for all agents, always gathered.
    """

    def __init__(self, idx: np.ndarray, mask: np.ndarray, obs_dim: int, hidden: Sequence[int], out_features: int, *,
                 activation: str = "relu", out_gain: float = 1.0, dense: bool | None = None,
                 n_sources: int | None = None, shared: bool = False) -> None:
        idx, mask = np.asarray(idx), np.asarray(mask, dtype=bool)
        n, K = idx.shape
        n_src = n if n_sources is None else n_sources           # rows of x (e.g. 1: a global state all agents read)
        super().__init__(1 if shared else n, K * obs_dim, hidden, out_features, activation=activation, out_gain=out_gain)
        self.obs_dim, self.n_sources, self.n_agents = obs_dim, n_src, n
        if shared and dense:
            raise ValueError("a shared NeighbourhoodMLP is always gathered (dense=True needs one network per agent)")
        self.dense = False if shared else (dense if dense is not None else (n_src * obs_dim <= 2048 and 2 * K >= n_src))
        self.register_buffer("idx", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.register_buffer("slot_weight", torch.tensor(mask, dtype=torch.float32), persistent=False)
        if self.dense:
            wo, _, _, h = self.layers[0]
            take = np.zeros((n_src, obs_dim, n, h), dtype=np.int64)     # [source j, obs dim d, agent i, unit c]
            keep = np.zeros((n_src, obs_dim, n, h), dtype=np.float32)
            P = self.flat.shape[1]
            for i in range(n):
                for s in range(K):
                    if mask[i, s]:
                        j = idx[i, s]
                        rows = wo + (s * obs_dim + np.arange(obs_dim))[:, None] * h + np.arange(h)[None, :]
                        take[j, :, i, :] = i * P + rows
                        keep[j, :, i, :] = 1.0
            self.register_buffer("dense_take", torch.tensor(take.reshape(n_src * obs_dim, n * h)), persistent=False)
            self.register_buffer("dense_keep", torch.tensor(keep.reshape(n_src * obs_dim, n * h)), persistent=False)

    def share_input(self, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """``x[N, n, o]`` → what :meth:`forward_shared` takes (the gathered copy, or ``x`` itself when dense).
        ``rows``: only those agents' gathered inputs ``[k, N, K·o]`` (gathered networks only)."""
        if self.dense:
            if rows is not None:
                raise ValueError("a dense NeighbourhoodMLP takes every agent's input at once (rows=None)")
            return x
        idx, weight = (self.idx, self.slot_weight) if rows is None else (self.idx[rows], self.slot_weight[rows])
        xa = x.transpose(0, 1)                                               # [n, N, o]
        g = xa[idx] * weight.to(x.dtype)[:, :, None, None]                   # [k, K, N, o]
        return g.permute(0, 2, 1, 3).reshape(idx.shape[0], x.shape[0], -1)

    def forward_shared(self, inp: torch.Tensor) -> torch.Tensor:
        """``[n, N, out]`` from :meth:`share_input`'s output."""
        if not self.dense:
            return self.forward(inp)
        N, n = inp.shape[0], self.members
        h = self.layers[0][3]
        w = torch.take(self.flat, self.dense_take) * self.dense_keep          # [n_src·o, n·h]
        b = self.flat[:, self.layers[0][1]:self.layers[0][1] + h].reshape(-1, 1)
        z = torch.addmm(b, w.T, inp.reshape(N, -1).T).view(n, h, N)          # feature-major [n, h, N]
        if len(self.layers) == 1:
            return z.transpose(1, 2)
        return self.layers_from(1, self._act(z), self.flat)

    def forward_obs(self, x: torch.Tensor) -> torch.Tensor:
        """``x[N, n, o]`` → ``[n, N, out]``."""
        return self.forward_shared(self.share_input(x))


@torch.no_grad()
def adam_rows_(params: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
               steps: torch.Tensor, *, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5,
               max_grad_norm: float | None = None) -> torch.Tensor:
    """One Adam step on every row of ``params[k, P]`` in place; returns the rows' pre-clip grad norms ``[k]``.

    Row ``r`` has its own step count ``steps[r]`` and, with ``max_grad_norm``, its gradient is scaled
    by ``min(1, max_grad_norm / (‖g_r‖ + 1e-6))`` first (``torch.nn.utils.clip_grad_norm_`` per row).
    """
    b1, b2 = betas
    norms = torch.linalg.vector_norm(grad, dim=1)
    if max_grad_norm:
        grad = grad * torch.clamp(max_grad_norm / (norms + 1e-6), max=1.0)[:, None]
    steps += 1
    exp_avg.mul_(b1).add_(grad, alpha=1.0 - b1)
    exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
    corr1 = (1.0 - b1 ** steps)[:, None]
    corr2 = (1.0 - b2 ** steps)[:, None]
    denom = (exp_avg_sq / corr2).sqrt_().add_(eps)
    params.addcdiv_(exp_avg / corr1, denom, value=-lr)
    return norms


class StackedAdam:
    """Adam state for the rows of one flat parameter tensor ``param[G, P]`` (see :func:`adam_rows_`).

    ``step()`` updates every row from ``param.grad``. To update a subset of rows many times (a stage
    of the sequential scheme), take a working copy with :meth:`rows`, step it with :func:`adam_rows_`,
    and write it back with :meth:`put_rows`: the other rows' parameters and moments are never touched.
    """

    def __init__(self, param: torch.Tensor, lr: float, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-5, max_grad_norm: float | None = None) -> None:
        if param.dim() != 2:
            raise ValueError(f"StackedAdam needs a flat parameter [G, P], got shape {tuple(param.shape)}")
        self.param = param
        self.lr, self.betas, self.eps, self.max_grad_norm = lr, betas, eps, max_grad_norm or None
        self.exp_avg = torch.zeros_like(param, requires_grad=False)
        self.exp_avg_sq = torch.zeros_like(param, requires_grad=False)
        self.steps = torch.zeros(param.shape[0], dtype=param.dtype, device=param.device)

    def hyper(self) -> dict:
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "max_grad_norm": self.max_grad_norm}

    def step(self) -> torch.Tensor:
        """Adam on every row from ``param.grad``; returns the pre-clip grad norms ``[G]``."""
        norms = adam_rows_(self.param.data, self.param.grad, self.exp_avg, self.exp_avg_sq, self.steps, **self.hyper())
        self.param.grad = None
        return norms

    def rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Working copies ``(params, exp_avg, exp_avg_sq, steps)`` of ``rows``; ``params`` requires grad."""
        with torch.no_grad():
            p = self.param.index_select(0, rows)
        return (p.requires_grad_(), self.exp_avg.index_select(0, rows), self.exp_avg_sq.index_select(0, rows),
                self.steps.index_select(0, rows))

    @torch.no_grad()
    def put_rows(self, rows: torch.Tensor, params: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                 steps: torch.Tensor) -> None:
        self.param.index_copy_(0, rows, params.detach())
        self.exp_avg.index_copy_(0, rows, exp_avg)
        self.exp_avg_sq.index_copy_(0, rows, exp_avg_sq)
        self.steps.index_copy_(0, rows, steps)

    def state_dict(self) -> dict:
        return {"exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone(), "steps": self.steps.clone(),
                "lr": float(self.lr)}

    def load_state_dict(self, state: dict) -> None:
        """The moments and step counts; the learning rate stays the one this optimiser was built with
        (the run's config decides it: ``--resume ... algo.actor_lr=...`` takes effect)."""
        dev = self.param.device
        self.exp_avg.copy_(state["exp_avg"].to(dev))
        self.exp_avg_sq.copy_(state["exp_avg_sq"].to(dev))
        self.steps.copy_(state["steps"].to(dev, self.steps.dtype))


# ------------------------------------------------------------------------------------------------
# closed-form log-probabilities and entropies over padded action dimensions
# ------------------------------------------------------------------------------------------------

def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """Joint log-density of a diagonal Gaussian over the real dimensions.

    ``mean, actions [G, N, a]``, ``log_std, mask [G, a]`` (mask: 1 for real dimensions) → ``[G, N]``.
    """
    z = (actions - mean) * torch.exp(-log_std)[:, None, :]
    per_dim = -0.5 * z * z - (log_std + 0.5 * _LOG_2PI)[:, None, :]
    return (per_dim * mask[:, None, :]).sum(-1)


def gaussian_entropy(log_std: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[G]``: the entropy of a diagonal Gaussian over the real dimensions (it does not depend on the mean)."""
    return ((log_std + 0.5 + 0.5 * _LOG_2PI) * mask).sum(-1)


def categorical_log_prob(logits: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logits [G, N, a]``, integer ``actions [G, N]``, ``mask [G, a]`` (real actions) → ``[G, N]``."""
    logp = torch.log_softmax(logits.masked_fill(~mask[:, None, :], -1e9), dim=-1)
    return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def categorical_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[G, N]``: entropy of each categorical over the real actions."""
    logp = torch.log_softmax(logits.masked_fill(~mask[:, None, :], -1e9), dim=-1)
    return -(logp.exp() * logp).sum(-1)


class StackedPolicy(nn.Module):
    """``n`` per-agent policies as one :class:`StackedMLP` (agent-major inputs ``[n, N, in]``).

    Discrete: a categorical over each agent's ``action_dims[i]`` actions (padded actions masked).
    Continuous: a diagonal Gaussian whose state-independent log-stds are the stack's ``extra``
    parameters, so one flat row holds everything an agent's policy owns; padded dimensions are left
    out of log-probabilities and entropies (and sampled as 0).
    Every method takes optional ``params`` rows and ``agents`` (their indices) to run a subset.
    ``shared=True``: one policy for all agents (parameter sharing; one row of parameters).
    """

    def __init__(self, n_agents: int, in_features: int, action_kind: str, action_dims: Sequence[int],
                 hidden: Sequence[int] = (64, 64), *, init_log_std: float = -0.5, activation: str = "relu",
                 shared: bool = False) -> None:
        super().__init__()
        if action_kind not in ("discrete", "continuous"):
            raise ValueError(f"action_kind must be 'discrete' or 'continuous', got {action_kind!r}")
        self.kind = action_kind
        self.action_dims = tuple(int(d) for d in action_dims)
        a_max = max(action_dims)
        self.register_buffer("action_mask", torch.arange(a_max)[None, :] < torch.as_tensor(action_dims)[:, None])
        continuous = action_kind == "continuous"
        # shared: one policy (one row, log-stds included) for every agent
        self.net = StackedMLP(1 if shared else n_agents, in_features, hidden, a_max, activation=activation,
                              out_gain=0.01, extra=a_max if continuous else 0)
        if continuous:
            with torch.no_grad():
                self.net.extras().fill_(float(init_log_std))

    @property
    def flat(self) -> nn.Parameter:
        return self.net.flat

    def _mask(self, agents: torch.Tensor | None) -> torch.Tensor:
        return self.action_mask if agents is None else self.action_mask.index_select(0, agents)

    def log_prob_entropy(self, x: torch.Tensor, actions: torch.Tensor, params: torch.Tensor | None = None,
                         agents: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``[k, N]`` log-probabilities of ``actions`` (``[k, N]`` ints or ``[k, N, a]`` floats) and entropies
        (``[k, N]`` discrete, ``[k, 1]`` continuous: a state-independent std gives one entropy per agent)."""
        out = self.net(x, params)
        mask = self._mask(agents)
        if self.kind == "discrete":
            return categorical_log_prob(out, actions, mask), categorical_entropy(out, mask)
        log_std = self.net.extras(params)
        m = mask.to(out.dtype)
        return gaussian_log_prob(out, log_std, actions, m), gaussian_entropy(log_std, m)[:, None]


class NumpyPolicy:
    """A frozen copy of a :class:`StackedPolicy` for acting, in NumPy.

    Per-step inference on a few game copies is latency-bound: a forward pass is a dozen tiny products,
    and NumPy's per-call cost is a fraction of torch's. The trainer acts with this copy between
    updates (refresh it with a new instance after each update); it computes the same function.
    """

    def __init__(self, policy: StackedPolicy) -> None:
        net = policy.net
        flat = net.flat.detach().to("cpu", torch.float32).numpy()
        self.kind = policy.kind
        self.layers = [(net.weight(k, torch.from_numpy(flat)).numpy().copy(),
                        net.bias(k, torch.from_numpy(flat)).numpy()[:, None, :].copy()) for k in range(len(net.layers))]
        self.activation = net.activation
        dims = np.asarray(policy.action_dims)
        self.mask = np.arange(dims.max())[None, :] < dims[:, None]            # [n, a] bool
        if self.kind == "continuous":
            self.log_std = flat[:, net.n_params:].copy()                     # [n, a]
            self.std = np.exp(self.log_std)

    def mean(self, x: np.ndarray) -> np.ndarray:
        """``x[n, N, in]`` (float32) → the last layer's outputs ``[n, N, a]``."""
        z = x
        last = len(self.layers) - 1
        for k, (w, b) in enumerate(self.layers):
            z = np.matmul(z, w)
            z += b
            if k < last:
                if self.activation == "relu":
                    np.maximum(z, 0.0, out=z)
                elif self.activation == "tanh":
                    np.tanh(z, out=z)
                else:                                                   # silu: z · sigmoid(z)
                    z = z / (1.0 + np.exp(-z))
        return z

    def act(self, x: np.ndarray, rng: np.random.Generator, deterministic: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``[n, N]`` (discrete) or ``[n, N, a]`` (padded dimensions 0) and their log-probabilities ``[n, N]``."""
        out = self.mean(x)
        if self.kind == "discrete":
            logits = np.where(self.mask[:, None, :], out, -1e9)
            logits -= logits.max(-1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(-1, keepdims=True)
            if deterministic:
                a = p.argmax(-1)
            else:
                u = rng.random(p.shape[:-1] + (1,), dtype=np.float32)
                a = np.minimum((np.cumsum(p, -1) < u).sum(-1), self.mask.sum(-1)[:, None] - 1)
            logp = np.log(np.take_along_axis(p, a[..., None], -1)[..., 0])
            return a, logp
        m = self.mask.astype(np.float32)[:, None, :]
        if deterministic:
            a = out * m
        else:
            noise = rng.standard_normal(out.shape, dtype=np.float32)
            a = (out + self.std[:, None, :] * noise) * m
        z = (a - out) / self.std[:, None, :]
        logp = ((-0.5 * z * z - self.log_std[:, None, :] - 0.5 * _LOG_2PI) * m).sum(-1)
        return a, logp
