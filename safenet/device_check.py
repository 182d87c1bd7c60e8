"""Check, without a GPU, that an algorithm keeps its networks, optimizer state and update on its device.

The trick: run the algorithm on PyTorch's ``meta`` device, whose tensors have shapes but no data.
:class:`MetaDeviceMode` lets the run go on where data would leave the device (``.cpu()``,
``.numpy()``, ``.item()``, ``float(t)``, ``bool(t)``: zeros, or True, stand in for the values), and
records every operation that mixes a ``meta`` tensor with a host tensor of one or more dimensions,
the symptom of a tensor built without ``device=``. After construction, a collected rollout and one
update, :func:`misplaced_tensors` lists every parameter, buffer, optimizer state and tensor
attribute not on the device. The values computed are meaningless; only placement is checked.

Plugin authors: :func:`check_algorithm_device` does all of it for an algorithm/environment pair.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

_TO_HOST = {"cpu", "numpy", "item", "tolist", "__float__", "__int__", "__index__", "__bool__", "__array__"}
_TRANSFERS = {"to", "copy_", "__setitem__", "__get__", "__set__", "new_tensor", "as_tensor", "tensor",
              "_has_compatible_shallow_copy_type"}           # nn.Module.to() swapping a parameter in place


def _host_value(name: str, t: torch.Tensor) -> Any:
    zeros = torch.zeros(t.shape, dtype=t.dtype)
    if name == "cpu":
        return zeros
    if name in ("numpy", "__array__"):
        return zeros.numpy()
    if name == "tolist":
        return zeros.tolist()
    if name == "__bool__":
        return True
    if name in ("__int__", "__index__"):
        return 0
    return 0.0 if t.dtype.is_floating_point else 0


class MetaDeviceMode(TorchFunctionMode):
    """Runs code on ``meta`` tensors: host transfers return placeholders; host/meta mixes are recorded
    in :attr:`mixed` (the operation's name and its tensors' devices)."""

    def __init__(self) -> None:
        super().__init__()
        self.mixed: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.device.type == "meta":
            if name in _TO_HOST:
                return _host_value(name, first)
            if name == "to" and _targets_host(args[1:], kwargs):
                return _host_value("cpu", first)
        if name not in _TRANSFERS:
            tensors = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor)]
            on_meta = any(t.device.type == "meta" for t in tensors)
            on_host = [t for t in tensors if t.device.type == "cpu" and t.dim() > 0]
            if on_meta and on_host:
                self.mixed.append(f"{name}: a host tensor {tuple(on_host[0].shape)} meets tensors on the device")
        return func(*args, **kwargs)


def _targets_host(args: tuple, kwargs: dict) -> bool:
    target = kwargs.get("device", args[0] if args else None)
    if isinstance(target, torch.Tensor):
        target = target.device
    if isinstance(target, (str, torch.device)):
        return torch.device(target).type == "cpu"
    return False


def _walk(obj: Any, path: str, seen: set[int]) -> Iterator[tuple[str, torch.Tensor]]:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.nn.Module):
        for name, t in [*obj.named_parameters(), *obj.named_buffers()]:
            yield f"{path}.{name}", t
        for name, child in vars(obj).items():
            if not name.startswith("_"):
                yield from _walk(child, f"{path}.{name}", seen)
    elif isinstance(obj, torch.optim.Optimizer):
        for i, state in enumerate(obj.state.values()):
            for key, t in state.items():
                if key != "step" and isinstance(t, torch.Tensor):    # Adam keeps its step count on the host
                    yield f"{path}.state[{i}].{key}", t
    elif isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}[{k!r}]", seen)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]", seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, np.ndarray, np.random.Generator)):
        if type(obj).__module__.split(".")[0] in ("builtins", "numpy", "torch"):
            return
        for name, v in vars(obj).items():
            yield from _walk(v, f"{path}.{name}", seen)


def device_tensors(algo: Any) -> list[tuple[str, torch.Tensor]]:
    """Every parameter, buffer, optimizer state tensor and tensor attribute reachable from ``algo``."""
    return list(_walk(algo, type(algo).__name__, set()))


def misplaced_tensors(algo: Any, device: str | torch.device) -> list[str]:
    """Paths and devices of the tensors of :func:`device_tensors` that are not on ``device``."""
    want = torch.device(device).type
    return [f"{path} on {t.device}" for path, t in device_tensors(algo) if t.device.type != want]


def optimizer_state_count(algo: Any) -> int:
    """Optimizer state tensors held by ``algo`` (torch optimizers' after their first step, and the moments
    of :class:`safenet.stacked.StackedAdam`)."""
    return sum(1 for path, _ in device_tensors(algo)
               if ".state[" in path or path.endswith((".exp_avg", ".exp_avg_sq")))


def check_algorithm_device(algo: str, env: str, overrides: list[str] = (), steps: int = 8, pm=None) -> Any:
    """Build ``algo`` on ``meta`` for a 2-copy ``env``, collect ``steps`` steps and update once.

    Raises ``AssertionError`` naming the tensors or operations off the device; returns the algorithm.
    """
    from .config import section_object
    from .rollout import Collector
    from .trainer import Selection, derived_seed, make_game

    sel = Selection.resolve(algo, env, pm)
    cfg = sel.compose(overrides=list(overrides))
    game = make_game(sel, cfg, 2, 0)
    cls = sel.algo.load()
    mode = MetaDeviceMode()
    with mode:
        learner = cls(game.spec, section_object(cfg.algo), seed=derived_seed(0, 1), device="meta")
        built = misplaced_tensors(learner, "meta")
        rollout, _ = Collector(game, seed=0).collect(learner, steps)
        learner.update(rollout)
    game.close()
    problems = [f"after construction: {p}" for p in built] + mode.mixed[:5]
    problems += [f"after an update: {p}" for p in misplaced_tensors(learner, "meta")]
    if optimizer_state_count(learner) == 0 and any(
            isinstance(v, torch.optim.Optimizer) for v in vars(learner).values()):
        problems.append("the update left no optimizer state to check")
    assert not problems, f"{algo} on {env}: not on its device:\n  " + "\n  ".join(problems)
    return learner
