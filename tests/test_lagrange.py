"""Lagrange multipliers: direction of the updates, projection to [0, max], masks, PID, checkpoints."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from safenet.lagrange import LagrangeConfig, LagrangeMultipliers

INF = np.inf
# agent 0 has two constraints, agent 1 one (its second column is padding)
LIMITS = np.array([[1.0, 2.0], [3.0, INF]])


def test_mask_defaults_to_finite_limits():
    lm = LagrangeMultipliers(LIMITS, init=0.7)
    np.testing.assert_array_equal(lm.mask, [[True, True], [True, False]])
    np.testing.assert_allclose(lm.value, [[0.7, 0.7], [0.7, 0.0]])


def test_gradient_rises_when_violated_and_falls_to_zero_when_satisfied():
    lm = LagrangeMultipliers(LIMITS, lr=0.5)
    v = lm.update(np.array([[3.0, 2.0], [3.0, 50.0]]))          # violations 2, 0, 0
    np.testing.assert_allclose(v, [[1.0, 0.0], [0.0, 0.0]])
    v = lm.update(np.array([[4.0, 6.0], [5.0, 50.0]]))          # violations 3, 4, 2
    np.testing.assert_allclose(v, [[2.5, 2.0], [1.0, 0.0]])
    v = lm.update(np.array([[0.0, 0.0], [0.0, 0.0]]))           # satisfied: -1, -2, -3
    np.testing.assert_allclose(v, [[2.0, 1.0], [0.0, 0.0]])     # 1.0 - 1.5 clipped at 0
    for _ in range(10):
        v = lm.update(np.zeros((2, 2)))
    np.testing.assert_array_equal(v, np.zeros((2, 2)))
    assert (v >= 0).all()


def test_masked_constraints_stay_zero_with_an_explicit_mask():
    mask = np.array([[True, False], [False, False]])
    lm = LagrangeMultipliers(np.array([[1.0, 1.0], [1.0, 1.0]]), mask, lr=1.0, init=5.0)
    np.testing.assert_allclose(lm.value, [[5.0, 0.0], [0.0, 0.0]])
    for _ in range(3):
        v = lm.update(np.full((2, 2), 100.0))
    assert v[0, 0] > 5.0
    assert v[0, 1] == v[1, 0] == v[1, 1] == 0.0


def test_max_value_clip():
    lm = LagrangeMultipliers(np.array([[0.0]]), lr=10.0, max_value=7.5)
    assert lm.update(np.array([[1.0]]))[0, 0] == pytest.approx(7.5)
    assert lm.update(np.array([[1000.0]]))[0, 0] == pytest.approx(7.5)
    assert lm.update(np.array([[-0.5]]))[0, 0] == pytest.approx(2.5)


def test_pid_hand_computed_and_reacts_to_violation():
    lm = LagrangeMultipliers(np.array([[1.0]]), method="pid", kp=0.5, ki=0.25, kd=1.0)
    # e=2, I=2, Δcost=3 (prev 0): 1 + .5 + 3
    assert lm.update(np.array([[3.0]]))[0, 0] == pytest.approx(4.5)
    # e=1, I=3, Δ=-1→0: .5 + .75
    assert lm.update(np.array([[2.0]]))[0, 0] == pytest.approx(1.25)
    # satisfied: e=-1, I=2: -.5 + .5 = 0
    assert lm.update(np.array([[0.0]]))[0, 0] == pytest.approx(0.0)
    # the integral never goes below 0 and λ never below 0
    for _ in range(5):
        assert lm.update(np.array([[0.0]]))[0, 0] == 0.0
    # one violation after a long safe stretch acts at once (no negative integral to pay back)
    assert lm.update(np.array([[2.0]]))[0, 0] == pytest.approx(0.5 + 0.25 + 2.0)


def test_pid_rises_under_persistent_violation_and_decays_when_safe():
    lm = LagrangeMultipliers(LIMITS, method="pid", kp=0.1, ki=0.1)
    over = LIMITS.copy()
    over[~np.isfinite(over)] = 0
    vals = [lm.update(over + 1.0).copy() for _ in range(5)]
    assert all((b[lm.mask] > a[lm.mask]).all() for a, b in zip(vals, vals[1:]))
    assert vals[-1][1, 1] == 0.0
    safe = [lm.update(np.zeros_like(over)).copy() for _ in range(5)]
    assert (safe[-1][lm.mask] < vals[-1][lm.mask]).all()


def test_unknown_method():
    with pytest.raises(ValueError, match="pid"):
        LagrangeMultipliers(LIMITS, method="adam")


@pytest.mark.parametrize("method", ["gradient", "pid"])
def test_state_dict_round_trip_through_weights_only_load(method):
    a = LagrangeMultipliers(LIMITS, method=method, lr=0.3, kd=0.2)
    rng = np.random.default_rng(0)
    for _ in range(4):
        a.update(rng.uniform(0, 5, size=(2, 2)))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    b = LagrangeMultipliers(LIMITS, method=method, lr=0.3, kd=0.2)
    b.load_state_dict(state)
    np.testing.assert_array_equal(b.value, a.value)
    for _ in range(3):
        c = rng.uniform(0, 5, size=(2, 2))
        np.testing.assert_allclose(b.update(c), a.update(c))


def test_from_config():
    cfg = LagrangeConfig(method="pid", kp=2.0, ki=0.0, max_value=3.0, init=0.25)
    lm = LagrangeMultipliers.from_config(np.array([[1.0]]), np.array([[True]]), cfg)
    assert lm.value[0, 0] == 0.25
    assert lm.update(np.array([[2.0]]))[0, 0] == pytest.approx(2.0)
    assert lm.update(np.array([[5.0]]))[0, 0] == pytest.approx(3.0)   # clipped at max_value


def test_a_cap_given_to_one_update_replaces_the_fixed_one_per_agent():
    lm = LagrangeMultipliers(np.array([[1.0], [1.0], [1.0]]), lr=10.0, max_value=1.0)
    lm.update(np.array([[5.0], [5.0], [5.0]]), max_value=np.array([0.5, 2.0, 100.0]))   # [n]: one cap per agent
    np.testing.assert_allclose(lm.value[:, 0], [0.5, 2.0, 40.0])
    lm.update(np.array([[5.0], [5.0], [5.0]]))                                          # the fixed cap again
    np.testing.assert_allclose(lm.value[:, 0], [1.0, 1.0, 1.0])
