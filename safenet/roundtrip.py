"""Does an algorithm's state survive a checkpoint? Save → reload into a fresh instance → act.

:func:`verify_checkpoint` proves three things about a checkpoint file, or raises
:class:`RoundTripError` with one sentence saying what to fix:

1. it loads with ``torch.load(weights_only=True)`` (what ``safenet eval`` and ``--resume`` use);
2. a fresh instance of the algorithm accepts its ``algo`` state in ``load_state_dict``;
3. the reloaded instance acts exactly like the trained one on the same observations (deterministic
   actions and every array ``act`` returns in ``extras``).

The trainer runs it on the first checkpoint of every ``safenet train`` (fresh or resumed), and
:func:`safenet.testing.check_algorithm` on more observations. It leaves no trace on the run: the
trained algorithm is compared through a deep copy when it can be copied, and the global random
number generators are restored afterwards.
"""
from __future__ import annotations

import contextlib
import copy
import random
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .algorithm import Algorithm
from .errors import SafenetError

#: Values ``torch.load(weights_only=True)`` reads back (besides dicts, lists and tuples of them).
PLAIN = (torch.Tensor, torch.Size, torch.dtype, torch.device, bool, int, float, complex, str, bytes, type(None))


class RoundTripError(SafenetError):
    """A checkpoint does not restore the algorithm it was written from."""


def unloadable_value(state: Any, path: str = "state") -> tuple[str, str] | None:
    """The first ``(key path, type name)`` in ``state`` that a weights-only load refuses (None: all fine)."""
    if isinstance(state, dict):
        for k, v in state.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                return f"{path} (a key)", type(k).__module__ + "." + type(k).__name__
            found = unloadable_value(v, f"{path}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(state, (list, tuple)) and type(state) in (list, tuple):
        for k, v in enumerate(state):
            found = unloadable_value(v, f"{path}[{k}]")
            if found:
                return found
        return None
    if isinstance(state, PLAIN):
        return None
    return path, type(state).__module__ + "." + type(state).__qualname__


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, numpy's and torch's global generators on exit (the check draws nothing for the run)."""
    py, npy = random.getstate(), np.random.get_state()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def _differs(a: Any, b: Any) -> bool:
    try:
        x, y = np.asarray(a), np.asarray(b)
    except Exception:  # noqa: BLE001 - not array-like: compare as values
        return a != b
    if x.shape != y.shape:
        return True
    if x.dtype.kind in "fc" or y.dtype.kind in "fc":
        return not np.allclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True)
    return not np.array_equal(x, y)


def first_difference(trained: Algorithm, reloaded: Algorithm, batches: Sequence[tuple[np.ndarray, dict]]) -> str | None:
    """Where two algorithms act differently on ``batches`` of ``(obs, info)`` (None: identically)."""
    for k, (obs, info) in enumerate(batches):
        a1, e1 = trained.act(obs, info, deterministic=True)
        a2, e2 = reloaded.act(obs, info, deterministic=True)
        if _differs(a1, a2):
            return f"deterministic actions differ on observation batch {k}"
        for key in sorted(set(e1) & set(e2)):
            if _differs(e1[key], e2[key]):
                return f"act()'s extras[{key!r}] differ on observation batch {k}"
    return None


def verify_checkpoint(path: Path, trained: Algorithm, make_fresh: Callable[[], Algorithm],
                      batches: Sequence[tuple[np.ndarray, dict]]) -> None:
    """Raise :class:`RoundTripError` unless checkpoint ``path`` (holding ``{"algo": state, ...}``)
    restores ``trained`` (see the module docstring). ``make_fresh`` builds a new, untrained instance."""
    cls = type(trained).__name__
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        bad = unloadable_value({"algo": trained.state_dict()})
        what = (f"{cls}.state_dict() puts a {bad[1]} at {bad[0].replace('state', '', 1).lstrip()}"
                if bad else f"torch says: {str(exc).strip().splitlines()[0]}")
        raise RoundTripError(f"checkpoint {Path(path).name} cannot be loaded with torch.load(weights_only=True), "
                             f"so `safenet eval` and `--resume` would fail: {what}; state_dict() may hold only "
                             f"tensors and plain values (convert arrays with torch.as_tensor, RNG states to tensors "
                             f"or JSON strings)") from None
    algo_state = state.get("algo") if isinstance(state, dict) else None
    with preserved_rng():
        reloaded = make_fresh()
        try:
            reloaded.load_state_dict(algo_state)
        except Exception as exc:  # noqa: BLE001
            raise RoundTripError(f"{cls}.load_state_dict() raised {type(exc).__name__}: {exc} when given the "
                                 f"state its own state_dict() wrote to {Path(path).name}") from exc
        try:
            probe = copy.deepcopy(trained)           # acting must not change the run's algorithm
        except Exception:  # noqa: BLE001 - not copyable: act on the trained one (deterministically)
            probe = trained
        where = first_difference(probe, reloaded, batches)
        if where is None:
            return
        again = make_fresh()
        again.load_state_dict(algo_state)
        twin = make_fresh()
        twin.load_state_dict(algo_state)
        if first_difference(again, twin, batches) is not None:
            raise RoundTripError(f"{cls}.act(..., deterministic=True) is not deterministic: two copies loaded from "
                                 f"the same checkpoint act differently; deterministic acting must not draw random "
                                 f"numbers, or the round trip of its state cannot be checked")
    keys = ", ".join(map(str, algo_state)) if isinstance(algo_state, dict) else type(algo_state).__name__
    if not algo_state:
        raise RoundTripError(f"a policy reloaded from {Path(path).name} is not the trained one ({where}): "
                             f"{cls}.state_dict() returned nothing, so checkpoints hold no weights and "
                             f"`safenet eval` would evaluate an untrained policy; implement state_dict() and "
                             f"load_state_dict() (tensors and plain values)")
    raise RoundTripError(f"a policy reloaded from {Path(path).name} is not the trained one ({where}): "
                         f"{cls}.state_dict()/load_state_dict() leave out state that act() uses (saved keys: "
                         f"{keys}); save and restore every parameter, normaliser and multiplier act() reads")
