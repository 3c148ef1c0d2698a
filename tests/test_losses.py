"""The OT loss core against independent oracles: POT's exact solver, TRL's own code, autograd."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import re
import textwrap
from types import SimpleNamespace

import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F
import trl.trainer.dpo_trainer
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_aot.ot.losses import COSTS, aot_paired_loss, aot_unpaired_loss, check_finite, cost_fn

REWARD = st.floats(-10, 10, allow_nan=False, allow_subnormal=False)
# Rewards with many exact ties as well as generic values.
REWARDS = st.lists(st.one_of(REWARD, st.sampled_from([0.0, 1.0, -1.0])), min_size=1, max_size=16)
BETA = st.floats(0.01, 3.0)


def h(z: np.ndarray, cost: str, eps: float) -> np.ndarray:
    """The costs of docs/method.md, "Costs", written independently in numpy."""
    if cost == "logistic":
        return (1 - eps) * np.logaddexp(0, -z) + eps * np.logaddexp(0, z)
    if cost == "squared_hinge":
        return np.maximum(1 - z, 0) ** 2
    return (1 - z) ** 2


def emd_cost(pos: list[float], neg: list[float], beta: float, cost: str, eps: float = 0.0) -> float:
    u, v = np.asarray(pos), np.asarray(neg)
    matrix = h(beta * (u[:, None] - v[None, :]), cost, eps)
    return float(ot.emd2(np.ones(len(u)) / len(u), np.ones(len(v)) / len(v), matrix))


@settings(max_examples=300, deadline=None)
@given(pos=REWARDS, neg=REWARDS, beta=BETA, cost=st.sampled_from(COSTS), eps=st.floats(0.0, 0.49))
def test_unpaired_loss_equals_exact_ot_cost(pos, neg, beta, cost, eps):
    eps = eps if cost == "logistic" else 0.0
    loss = aot_unpaired_loss(
        torch.tensor(pos, dtype=torch.float64),
        torch.tensor(neg, dtype=torch.float64),
        beta=beta,
        cost=cost,
        label_smoothing=eps,
    )
    assert loss.shape == ()
    assert loss.item() == pytest.approx(emd_cost(pos, neg, beta, cost, eps), rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 16), cost=st.sampled_from(COSTS), beta=BETA, data=st.data())
def test_paired_loss_equals_exact_ot_cost_of_log_ratios(n, cost, beta, data):
    logps = [data.draw(st.lists(REWARD, min_size=n, max_size=n)) for _ in range(4)]
    pc, pr, rc, rr = (torch.tensor(x, dtype=torch.float64) for x in logps)
    loss = aot_paired_loss(pc, pr, rc, rr, beta=beta, cost=cost)
    expected = emd_cost((pc - pr).tolist(), (rc - rr).tolist(), beta, cost)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-6)


def trl_loss(
    loss_type: str, beta: float, label_smoothing: float = 0.0, **tensors: torch.Tensor
) -> torch.Tensor:
    """Run the branch of TRL's installed ``DPOTrainer._compute_loss`` for ``loss_type``.

    The lines are read from the installed TRL source, not copied, so this is TRL's own code.
    """
    source = inspect.getsource(trl.trainer.dpo_trainer.DPOTrainer._compute_loss)
    match = re.search(rf'if loss_type == "{loss_type}":\n(.*?)\n\s*elif loss_type', source, re.S)
    assert match, f"TRL's _compute_loss has no {loss_type!r} branch"
    namespace = {
        "torch": torch,
        "F": F,
        "self": SimpleNamespace(beta=beta, label_smoothing=label_smoothing),
        **tensors,
    }
    exec(compile(textwrap.dedent(match.group(1)), "trl-dpo-branch", "exec"), namespace)
    return namespace["per_sequence_loss"].mean()


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 32), beta=BETA, eps=st.floats(0.0, 0.49), seed=st.integers(0, 2**31))
def test_equal_sizes_match_trl_aot_and_aot_unpaired(n, beta, eps, seed):
    g = torch.Generator().manual_seed(seed)
    pc, pr, rc, rr = (torch.randn(n, generator=g, dtype=torch.float64) * 5 for _ in range(4))
    paired = aot_paired_loss(pc, pr, rc, rr, beta=beta, label_smoothing=eps)
    trl_paired = trl_loss(
        "aot",
        beta,
        eps,
        chosen_logps=pc,
        rejected_logps=pr,
        ref_chosen_logps=rc,
        ref_rejected_logps=rr,
    )
    assert paired.item() == pytest.approx(trl_paired.item(), rel=1e-12, abs=1e-12)
    unpaired = aot_unpaired_loss(pc - rc, pr - rr, beta=beta, label_smoothing=eps)
    trl_unpaired = trl_loss("aot_unpaired", beta, eps, chosen_logratios=pc - rc, rejected_logratios=pr - rr)
    assert unpaired.item() == pytest.approx(trl_unpaired.item(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_one_pair_is_dpo_and_cdpo(eps):
    pc, pr, rc, rr = (torch.tensor([x], dtype=torch.float64) for x in (-3.0, -7.5, -4.0, -6.0))
    loss = aot_paired_loss(pc, pr, rc, rr, beta=0.3, label_smoothing=eps)
    margin = 0.3 * ((pc - rc) - (pr - rr))
    cdpo = -(1 - eps) * F.logsigmoid(margin) - eps * F.logsigmoid(-margin)
    assert loss.item() == pytest.approx(cdpo.item(), rel=1e-12)
    if eps == 0.0:
        dpo = trl_loss("sigmoid", 0.3, delta_score=(pc - rc) - (pr - rr))
        assert loss.item() == pytest.approx(dpo.item(), rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(pos=REWARDS, neg=REWARDS, cost=st.sampled_from(COSTS), seed=st.integers(0, 2**31))
def test_unpaired_loss_is_invariant_to_permutations(pos, neg, cost, seed):
    g = torch.Generator().manual_seed(seed)
    u, v = torch.tensor(pos, dtype=torch.float64), torch.tensor(neg, dtype=torch.float64)
    shuffled = aot_unpaired_loss(
        u[torch.randperm(len(u), generator=g)], v[torch.randperm(len(v), generator=g)], beta=0.5, cost=cost
    )
    assert shuffled.item() == pytest.approx(aot_unpaired_loss(u, v, beta=0.5, cost=cost).item(), rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 12), cost=st.sampled_from(COSTS), seed=st.integers(0, 2**31))
def test_paired_loss_is_invariant_to_permuting_policy_and_reference_ratios(n, cost, seed):
    g = torch.Generator().manual_seed(seed)
    pc, pr, rc, rr = (torch.randn(n, generator=g, dtype=torch.float64) for _ in range(4))
    p, q = torch.randperm(n, generator=g), torch.randperm(n, generator=g)
    loss = aot_paired_loss(pc, pr, rc, rr, beta=0.7, cost=cost)
    # a = pc - pr is permuted as a whole (pairs stay pairs), b likewise but independently.
    permuted = aot_paired_loss(pc[p], pr[p], rc[q], rr[q], beta=0.7, cost=cost)
    assert permuted.item() == pytest.approx(loss.item(), rel=1e-12)


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
def test_sorted_matching_is_the_cheapest_and_reversed_the_dearest(cost, n):
    g = torch.Generator().manual_seed(n)
    u, v = torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)
    beta = 2.0
    loss = aot_unpaired_loss(u, v, beta=beta, cost=cost).item()
    matchings = [
        cost_fn(beta * (u - v[list(s)]), cost).mean().item() for s in itertools.permutations(range(n))
    ]
    assert loss == pytest.approx(min(matchings), rel=1e-12)
    reversed_match = cost_fn(beta * (u.sort().values - v.sort(descending=True).values), cost).mean()
    assert reversed_match.item() == pytest.approx(max(matchings), rel=1e-12)
    if n > 1:
        assert loss < reversed_match.item()


@settings(max_examples=100, deadline=None)
@given(
    shards=st.integers(2, 4), size=st.integers(1, 8), cost=st.sampled_from(COSTS), seed=st.integers(0, 2**31)
)
def test_pooling_never_costs_more(shards, size, cost, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(shards * size, generator=g, dtype=torch.float64) * 3
    v = torch.randn(shards * size, generator=g, dtype=torch.float64) * 3 + 1
    pooled = aot_unpaired_loss(u, v, beta=0.8, cost=cost).item()
    per_shard = [
        aot_unpaired_loss(a, b, beta=0.8, cost=cost).item()
        for a, b in zip(u.split(size), v.split(size), strict=True)
    ]
    assert pooled <= np.mean(per_shard) + 1e-12


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_logistic_gradient_identity(eps):
    g = torch.Generator().manual_seed(0)
    n, beta = 7, 0.9
    u = torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True)
    aot_unpaired_loss(u, v, beta=beta, label_smoothing=eps).backward()
    u_order, v_order = u.detach().argsort(), v.detach().argsort()
    d = u.detach()[u_order] - v.detach()[v_order]
    expected = beta / n * (torch.sigmoid(beta * d) - (1 - eps))
    torch.testing.assert_close(u.grad[u_order], expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(v.grad[v_order], -expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cost", ["logistic", "least_squares"])
@pytest.mark.parametrize(("n", "m"), [(3, 5), (7, 2), (4, 6), (1, 9)])
def test_unequal_size_gradient_equals_ot_plan_gradient(cost, n, m):
    """Envelope theorem: dL/du_i = sum_j P_ij dC_ij/du_i for the (unique) optimal plan P of POT."""
    g = torch.Generator().manual_seed(n * 31 + m)
    u = torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(m, generator=g, dtype=torch.float64, requires_grad=True)
    beta = 1.3
    aot_unpaired_loss(u, v, beta=beta, cost=cost).backward()
    un, vn = u.detach().numpy(), v.detach().numpy()
    plan = ot.emd(np.ones(n) / n, np.ones(m) / m, h(beta * (un[:, None] - vn[None, :]), cost, 0.0))
    z = beta * (un[:, None] - vn[None, :])
    dh = -1 / (1 + np.exp(z)) if cost == "logistic" else -2 * (1 - z)
    np.testing.assert_allclose(u.grad.numpy(), beta * (plan * dh).sum(axis=1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(v.grad.numpy(), -beta * (plan * dh).sum(axis=0), rtol=1e-9, atol=1e-12)


def test_paired_gradients_are_opposite_within_each_pair_and_spare_the_reference():
    g = torch.Generator().manual_seed(1)
    pc, pr = (torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    rc, rr = (torch.randn(6, generator=g, dtype=torch.float64) for _ in range(2))
    aot_paired_loss(pc, pr, rc, rr, beta=0.5).backward()
    torch.testing.assert_close(pc.grad, -pr.grad, rtol=0, atol=0)
    assert rc.grad is None and rr.grad is None
    assert (pc.grad < 0).all()  # lowering the loss raises every chosen log-prob


def test_dominance_and_the_squared_hinge_zero_set():
    v = torch.tensor([0.0, 1.0, 2.0, 5.0], dtype=torch.float64)
    beta = 0.5
    just_enough = v + 1 / beta  # beta * (u_(i) - v_(i)) == 1 for every i
    assert aot_unpaired_loss(just_enough, v, beta=beta, cost="squared_hinge").item() == 0.0
    short = just_enough.clone()
    short[2] -= 0.1  # one quantile falls short of the margin
    assert aot_unpaired_loss(short, v, beta=beta, cost="squared_hinge").item() > 0.0
    # Dominance (u_(i) >= v_(i)) makes the logistic loss at most log 2: no sorted pair is violated.
    assert aot_unpaired_loss(v + 0.01, v, beta=beta).item() < np.log(2)
    assert aot_unpaired_loss(v - 0.01, v, beta=beta).item() > np.log(2)


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize(("n", "m"), [(4, 4), (3, 5), (6, 1)])
def test_gradcheck_float64(cost, n, m):
    g = torch.Generator().manual_seed(n + 10 * m)
    u = torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(m, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: aot_unpaired_loss(a, b, beta=0.7, cost=cost), (u, v))
    pc, pr, rc, rr = (torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(4))
    assert torch.autograd.gradcheck(
        lambda *x: aot_paired_loss(*x, beta=0.7, cost=cost, label_smoothing=0.0), (pc, pr, rc, rr)
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_low_precision_inputs_are_computed_and_returned_in_float32(dtype):
    g = torch.Generator().manual_seed(2)
    u = (torch.randn(5, generator=g) * 40).to(dtype).requires_grad_()
    v = (torch.randn(3, generator=g) * 40).to(dtype)
    loss = aot_unpaired_loss(u, v, beta=0.1, cost="least_squares")
    assert loss.dtype == torch.float32
    expected = emd_cost(u.float().tolist(), v.float().tolist(), 0.1, "least_squares")
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert u.grad.dtype == dtype


def test_float64_stays_float64():
    u, v = torch.zeros(2, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    assert aot_unpaired_loss(u, v, beta=1.0).dtype == torch.float64


GOOD = torch.tensor([0.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pos": torch.zeros(2, 2)}, r"pos must be 1-D; got shape \(2, 2\)"),
        ({"neg": torch.tensor(1.0)}, r"neg must be 1-D; got shape \(\)"),
        ({"pos": torch.zeros(0)}, "pos is empty"),
        ({"neg": torch.tensor([0.0, float("nan")])}, "neg has a non-finite value nan at index 1"),
        ({"pos": torch.tensor([float("inf")])}, "pos has a non-finite value inf at index 0"),
        ({"pos": [0.0, 1.0]}, "pos must be a torch.Tensor; got list"),
        ({"cost": "hinge"}, "cost must be one of 'logistic', 'squared_hinge', 'least_squares'; got 'hinge'"),
        ({"beta": 0.0}, "beta must be a finite number > 0; got 0.0"),
        ({"beta": -1}, "beta must be a finite number > 0; got -1"),
        ({"beta": float("nan")}, "beta must be a finite number > 0; got nan"),
        ({"label_smoothing": 0.5}, r"label_smoothing must be in \[0, 0.5\); got 0.5"),
        ({"label_smoothing": -0.1}, r"label_smoothing must be in \[0, 0.5\); got -0.1"),
        (
            {"label_smoothing": 0.1, "cost": "squared_hinge"},
            "label_smoothing applies to cost='logistic' only; "
            "got label_smoothing=0.1 with cost='squared_hinge'",
        ),
    ],
)
def test_unpaired_bad_input_raises_naming_argument_and_value(kwargs, message):
    args = {"pos": GOOD, "neg": GOOD, "beta": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        aot_unpaired_loss(args.pop("pos"), args.pop("neg"), **args)


def test_paired_bad_input_raises_naming_argument_and_value():
    with pytest.raises(
        ValueError, match=r"paired log-probs must have equal lengths; got .*'ref_rejected_logps': 3"
    ):
        aot_paired_loss(GOOD, GOOD, GOOD, torch.zeros(3), beta=0.1)
    with pytest.raises(ValueError, match="policy_rejected_logps has a non-finite value nan at index 0"):
        aot_paired_loss(GOOD, torch.tensor([float("nan"), 0.0]), GOOD, GOOD, beta=0.1)
    with pytest.raises(ValueError, match=r"ref_chosen_logps must be 1-D; got shape \(2, 1\)"):
        aot_paired_loss(GOOD, GOOD, GOOD[:, None], GOOD, beta=0.1)
    with pytest.raises(ValueError, match="cost must be one of"):
        aot_paired_loss(GOOD, GOOD, GOOD, GOOD, beta=0.1, cost="ipo")


NAN = float("nan")


@pytest.mark.parametrize(
    ("loss", "inputs", "name", "index"),
    [
        (aot_paired_loss, [GOOD, GOOD, torch.tensor([0.0, NAN]), GOOD], "ref_chosen_logps", 2),
        (aot_unpaired_loss, [torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, float("-inf")])], "neg", 1),
    ],
)
def test_check_finite_false_defers_the_same_error_to_check_finite(loss, inputs, name, index):
    with pytest.raises(ValueError) as eager:
        loss(*inputs, beta=0.1)
    assert loss(*inputs, beta=0.1, check_finite=False).dim() == 0  # no error: the caller checks
    with pytest.raises(ValueError) as deferred:
        check_finite(name, inputs[index])
    assert str(deferred.value) == str(eager.value)
    assert str(eager.value).startswith(f"{name} has a non-finite value ")
    assert str(eager.value).endswith("at index 1")
    check_finite(name, GOOD)  # finite: nothing raised


class HostRead(AssertionError):
    """A loss call read a tensor's value on the host (a device sync) or built one from host data."""


@contextlib.contextmanager
def host_reads_forbidden(monkeypatch):
    """Every way of reading a tensor's value into Python, and of building a tensor from host data,
    raises ``HostRead``: on a GPU the first would sync with the device, the second copy to it."""

    def forbidden(*args, **kwargs):
        raise HostRead

    with monkeypatch.context() as m:
        for method in ("item", "tolist", "nonzero", "__bool__", "__int__", "__float__"):
            m.setattr(torch.Tensor, method, forbidden)
        for factory in ("tensor", "as_tensor", "from_numpy"):
            m.setattr(torch, factory, forbidden)
        yield


def test_an_unchecked_loss_call_reads_nothing_on_the_host(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    paired = [torch.randn(6, generator=generator) for _ in range(4)]
    pos, neg = torch.randn(5, generator=generator), torch.randn(3, generator=generator)  # n != m
    expected = [
        aot_paired_loss(*paired, beta=0.3, cost="squared_hinge"),
        aot_unpaired_loss(pos, neg, beta=0.3, label_smoothing=0.1),  # copies the (5, 3) coupling once
    ]
    with host_reads_forbidden(monkeypatch):
        unchecked = [
            aot_paired_loss(*paired, beta=0.3, cost="squared_hinge", check_finite=False),
            aot_unpaired_loss(pos, neg, beta=0.3, label_smoothing=0.1, check_finite=False),
        ]
    assert [u.item() for u in unchecked] == [e.item() for e in expected]
    for checked in (
        lambda: aot_paired_loss(*paired, beta=0.3),
        lambda: aot_unpaired_loss(pos, neg, beta=0.3),
    ):
        with host_reads_forbidden(monkeypatch), pytest.raises(HostRead):  # the default check reads its answer
            checked()
