"""The router's Bayesian policies (learn/router_bayes.py) and the version-3 and -5 upgrades.

A version-3 router blob (written by ``data/make_v3_blobs.py`` with the release before the
policies) is an epsilon-greedy router and reads to the same answers; a version-5 Thompson router
(``data/make_v5_router_blob.py``, the release before ``thompson_scale``) reads with the whole
posterior's spread and answers and learns on as it did; a Thompson router started cold does not
collapse onto the cheap target; the pooled prior starts a never-tried target from what the others
showed; ``thompson_scale`` sets how far a sample strays from the posterior mean.
"""

import json
import pathlib

import numpy as np
import pytest

from learn import Draw, FastGRNNRouter, LearnInputError, StateError, from_bytes, to_bytes
from learn.router_bayes import BayesHead, normal_list
from learn.state import State

DATA = pathlib.Path(__file__).parent / "data"
OLD = json.loads((DATA / "v3-answers.json").read_text())


def v3_blob() -> bytes:
    return (DATA / "v3-router.safetensors").read_bytes()


def test_a_version_3_router_reads_as_epsilon_greedy_with_the_old_answers():
    router = from_bytes(v3_blob(), "router")
    assert router.policy == "epsilon" and router._bayes is None and router.epsilon_fade == 0.0
    assert {k: v for k, v in router.settings().items()
            if k not in ("policy", "prior_precision", "ucb_alpha", "bayes_dim", "thompson_scale",
                         "epsilon_fade")} == OLD["settings"]
    probe = np.array(OLD["probe"])
    assert np.allclose(router.expected_quality(probe), OLD["expected_quality"], rtol=1e-12, atol=0.0)
    draws = [Draw(0.9, 1), Draw(0.1, 0), Draw(0.1, 1)]
    got = [router.route(probe, estimated_tokens=2000, draw=d) for d in draws]
    for a, b in zip(got + [router.route(probe)], OLD["routes"] + [OLD["greedy"]]):
        assert set(a) == set(b) and a["model"] == b["model"] and a["exploration"] == b["exploration"]
        assert np.isclose(a["confidence"], b["confidence"], rtol=1e-12, atol=0.0)
    assert router.boundaries == OLD["boundaries"]
    router.record_outcome("a", 0.5, embedding=probe)
    blob = to_bytes(router)
    assert b'"schema_version":"7"' in blob and to_bytes(from_bytes(blob, "router")) == blob


def test_an_old_state_claiming_a_policy_is_refused():
    state = from_bytes(v3_blob(), "router").to_state()
    with pytest.raises(StateError, match="policy"):
        FastGRNNRouter.upgrade(state, 3)  # a version-3 state never had one
    with pytest.raises(StateError, match="layout 1"):
        FastGRNNRouter.upgrade(state, 1)


V5 = json.loads((DATA / "v5-router-answers.json").read_text())


def fixture_routes(router: FastGRNNRouter, probes: list, low_u: float) -> list[dict]:
    """What ``data/make_v5_router_blob.py`` (``low_u`` 0.9) and ``make_v6_router_blob.py`` (0.05)
    asked of their router, in the same order."""
    out = []
    for i, p in enumerate(probes):
        for draw in (Draw(low_u, 2 * i + 1), Draw(0.95, 7 * i + 3), None):
            out.append(router.route(p, estimated_tokens=3000, draw=draw))
    return out


def v5_routes(router: FastGRNNRouter) -> list[dict]:
    return fixture_routes(router, V5["probes"], 0.9)


def same_routes(got: list[dict], want: list[dict]) -> bool:
    """The same choices; the sampling values to a few units in the last place (another BLAS)."""
    return all(set(a) == set(b) and a["model"] == b["model"] and a["exploration"] == b["exploration"]
               and a["context_bucket"] == b["context_bucket"]
               and all(np.isclose(a[k], b[k], rtol=1e-12, atol=0.0) for k in ("temperature", "top_p", "confidence"))
               for a, b in zip(got, want, strict=True))


def test_a_version_5_thompson_router_samples_the_whole_posterior_and_answers_as_it_did():
    blob = (DATA / "v5-router.safetensors").read_bytes()
    assert b'"schema_version":"5"' in blob
    router = from_bytes(blob, "router")
    assert router.policy == "thompson" and router.thompson_scale == 1.0 and router.epsilon_fade == 0.0
    assert {k: v for k, v in router.settings().items()
            if k not in ("thompson_scale", "epsilon_fade")} == V5["settings"]
    for p, want in zip(V5["probes"], V5["expected_quality"], strict=True):
        assert np.allclose(router.expected_quality(p), want, rtol=1e-12, atol=0.0)
    assert same_routes(v5_routes(router), V5["routes"])
    # the fixture tells the scales apart: the new default would have answered otherwise
    narrow = FastGRNNRouter.from_state(State({**router.settings(), "thompson_scale": 0.5},
                                             router.to_state().scalars, router.to_state().arrays))
    assert not same_routes(v5_routes(narrow), V5["routes"])
    for t, q, x in V5["later"]:
        router.record_outcome(t, q, embedding=x)
    assert same_routes(v5_routes(router), V5["routes_after"])
    again = to_bytes(router)
    assert b'"schema_version":"7"' in again and from_bytes(again, "router").thompson_scale == 1.0


def test_a_version_5_state_claiming_a_thompson_scale_is_refused():
    state = from_bytes((DATA / "v5-router.safetensors").read_bytes(), "router").to_state()
    with pytest.raises(StateError, match="thompson_scale"):
        FastGRNNRouter.upgrade(state, 5)  # it has one now; a version-5 state never had


V6 = json.loads((DATA / "v6-router-answers.json").read_text())


def v6_routes(router: FastGRNNRouter) -> list[dict]:
    return fixture_routes(router, V6["probes"], 0.05)


def test_a_version_6_ucb_router_keeps_its_constant_epsilon_floor_and_answers_as_it_did():
    """Written by the release before ``epsilon_fade`` (``data/make_v6_router_blob.py``)."""
    blob = (DATA / "v6-router.safetensors").read_bytes()
    assert b'"schema_version":"6"' in blob
    router = from_bytes(blob, "router")
    assert router.policy == "ucb" and router.epsilon_fade == 0.0 and router.exploration_rate == 0.1
    assert {k: v for k, v in router.settings().items() if k != "epsilon_fade"} == V6["settings"]
    assert same_routes(v6_routes(router), V6["routes"])
    # the fixture tells a fading floor apart: its draws at 0.05 would no longer explore
    faded = FastGRNNRouter.from_state(State({**router.settings(), "epsilon_fade": 2.0},
                                            router.to_state().scalars, router.to_state().arrays))
    assert faded.exploration_rate == 0.1 * (2.0 / 10) and not same_routes(v6_routes(faded), V6["routes"])
    for t, q, x in V6["later"]:
        router.record_outcome(t, q, embedding=x)
    assert same_routes(v6_routes(router), V6["routes_after"])
    again = to_bytes(router)
    assert b'"schema_version":"7"' in again and from_bytes(again, "router").epsilon_fade == 0.0


def test_a_version_6_state_claiming_an_epsilon_fade_is_refused():
    state = from_bytes((DATA / "v6-router.safetensors").read_bytes(), "router").to_state()
    with pytest.raises(StateError, match="epsilon_fade"):
        FastGRNNRouter.upgrade(state, 6)  # it has one now; a version-6 state never had


def test_the_epsilon_floor_fades_with_the_least_tried_targets_outcomes():
    """At epsilon until every target has ``epsilon_fade`` outcomes, then epsilon * fade / fewest;
    a target left untried holds it up. A route explores exactly when its draw is below the rate."""
    r = FastGRNNRouter(in_dim=4, targets=["a", "b"], epsilon=0.1, policy="ucb", epsilon_fade=10.0)
    x = [0.3, -0.2, 0.1, 0.5]
    for _ in range(100):
        r.record_outcome("a", 1.0, embedding=x)
    assert r.exploration_rate == 0.1  # "b" has none: the floor stays
    for i in range(40):
        r.record_outcome("b", 0.0, embedding=x)
        assert r.exploration_rate == (0.1 if i + 1 <= 10 else 0.1 * (10.0 / (i + 1)))
    assert r.exploration_rate == 0.025
    assert r.route(x, draw=Draw(0.024, 1))["exploration"] and not r.route(x, draw=Draw(0.026, 1))["exploration"]
    restored = from_bytes(to_bytes(r), "router")
    assert restored.exploration_rate == 0.025 and restored.epsilon_fade == 10.0
    constant = FastGRNNRouter(in_dim=4, targets=["a", "b"], epsilon=0.1, policy="ucb", epsilon_fade=0.0)
    for t in ("a", "b") * 100:
        constant.record_outcome(t, 0.5, embedding=x)
    assert constant.exploration_rate == 0.1


def test_a_new_routers_floor_fades_under_a_bayesian_policy_only():
    """The defaults: 50 under ``ucb`` and ``thompson`` with an epsilon floor, 0 for epsilon-greedy
    (its epsilon is all the exploration it has) and without a floor; bad values name the field."""
    fade = {p: FastGRNNRouter(in_dim=4, targets=["a", "b"], policy=p).epsilon_fade
            for p in ("ucb", "thompson", "epsilon")}
    assert fade == {"ucb": 50.0, "thompson": 50.0, "epsilon": 0.0}
    assert FastGRNNRouter(in_dim=4, targets=["a", "b"], policy="ucb", epsilon=0.0).epsilon_fade == 0.0
    for bad in (-1.0, float("nan"), 1e10, "50"):
        with pytest.raises(LearnInputError) as info:
            FastGRNNRouter(in_dim=4, targets=["a", "b"], policy="ucb", epsilon_fade=bad)
        assert info.value.field == "epsilon_fade"


def test_thompson_scale_sets_how_far_a_sample_strays_from_the_posterior_mean():
    r, _ = two_armed_stream("thompson", n=30)
    x = np.ones(8)
    state = r.to_state()

    def answers(scale: float) -> list[str]:
        core = FastGRNNRouter.from_state(State({**state.settings, "thompson_scale": scale},
                                               state.scalars, state.arrays))
        return [core.route(x, draw=Draw(0.99, k))["model"] for k in range(400)]

    greedy = r.route(x)["model"]
    assert set(answers(0.0)) == {greedy}  # no spread: the posterior mean decides, whatever the draw
    away = [sum(a != greedy for a in answers(s)) for s in (0.25, 0.5, 1.0, 2.0)]
    assert away == sorted(away) and 0 < away[0] < away[-1] < 400  # wider samples stray more often


def two_armed_stream(policy: str, n: int = 400, seed: int = 0) -> tuple[FastGRNNRouter, list[str]]:
    """Cold start, the router's own policy, a price of 0.15 on a target right 0.9 vs 0.6 of the time."""
    r = FastGRNNRouter(in_dim=8, targets=["cheap", "strong"], epsilon=0.05, costs={"strong": 1.0},
                       cost_weight=0.15, seed=seed, policy=policy, hidden=16)
    rng = np.random.default_rng(seed)
    chosen = []
    for _ in range(n):
        x = rng.standard_normal(8)
        model = r.route(x, draw=Draw.from_rng(rng))["model"]
        q = float(rng.random() < (0.9 if model == "strong" else 0.6))
        r.record_outcome(model, q, embedding=x)
        chosen.append(model)
    return r, chosen


@pytest.mark.parametrize("policy", ["thompson", "ucb"])
def test_a_bayesian_router_started_cold_does_not_collapse_onto_the_cheap_target(policy):
    r, chosen = two_armed_stream(policy)
    assert chosen[-100:].count("strong") > 80
    mean = r.expected_quality(np.zeros(8))
    assert abs(mean[1] - 0.9) < 0.1  # calibrated: on the price's scale
    # the target tried rarely (about 20-90 outcomes here) is known less well, but well enough
    assert abs(mean[0] - 0.6) < 0.2 and mean[0] < mean[1] - 0.15


def test_a_route_that_does_not_explore_chooses_on_the_posterior_mean_alone():
    """``explore=False``: no epsilon draw and no UCB bonus, whatever the policy; the default
    route keeps UCB's bound (it needs no draw)."""
    r = FastGRNNRouter(in_dim=4, targets=["cheap", "strong"], epsilon=0.5, costs={"strong": 1.0},
                       cost_weight=0.15, seed=0, policy="ucb", hidden=8)
    rng = np.random.default_rng(2)
    for i in range(200):  # both right half of the time; the strong target seldom tried
        target = "strong" if i in (0, 51, 100, 151) else "cheap"
        r.record_outcome(target, float(i % 2), embedding=rng.standard_normal(4))
    x = np.zeros(4)
    assert r.route(x)["model"] == "strong"  # its bound: tried 4 times, so it may be much better
    assert r.route(x, explore=False)["model"] == "cheap"  # equal means, and it costs nothing
    exploring = Draw(0.0, 1)  # u < epsilon: would pick target 1
    assert r.route(x, draw=exploring)["exploration"] is True
    assert r.route(x, draw=exploring, explore=False) == r.route(x, explore=False)
    mean = r.expected_quality(x)
    assert abs(mean[0] - mean[1]) < 0.15  # so the mean alone cannot pay for the strong target
    with pytest.raises(LearnInputError, match="explore"):
        r.route(x, explore="no")


def test_the_epsilon_greedy_router_collapses_on_the_same_stream():
    """What issue 13 saw, kept as the reason for the Bayesian policies."""
    _, chosen = two_armed_stream("epsilon")
    assert chosen[-100:].count("strong") < 20


def test_a_target_never_tried_starts_from_the_pooled_outcomes():
    head = BayesHead(n_targets=3, dim=4, bayes_dim=8, prior_precision=10.0, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(200):
        head.update(0, head.features(rng.standard_normal(4)), 0.9)
    mean, sd = head.posterior(head.features(np.zeros(4)))
    assert mean[2] > 0.75 and sd[2] > sd[0]  # near what target 0 showed, and less certain


def test_the_sketch_keeps_features_bounded_and_deterministic():
    head = BayesHead(n_targets=2, dim=300, bayes_dim=16, prior_precision=1.0, seed=4)
    x = np.random.default_rng(0).standard_normal(300)
    phi = head.features(x)
    assert phi.shape == (17,) and phi[0] == 1.0
    assert 0.2 < np.var(phi[1:]) < 5.0  # unit scale, whatever the input dimension
    other = BayesHead(n_targets=2, dim=300, bayes_dim=16, prior_precision=1.0, seed=4)
    assert np.array_equal(other.features(x), phi)


def test_thompson_noise_comes_from_the_draw_only():
    assert normal_list(2**63 + 5, 5) == normal_list(2**63 + 5, 5)
    z = np.array([z for k in range(3000) for z in normal_list(k, 4)])
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05
    r, _ = two_armed_stream("thompson", n=30)
    x = np.ones(8)
    answers = {r.route(x, draw=Draw(0.99, k))["model"] for k in range(200)}
    assert answers == {"cheap", "strong"}  # uncertain after 30 outcomes: the draw decides
    assert r.route(x, draw=Draw(0.99, 7)) == r.route(x, draw=Draw(0.99, 7))


def test_batch_training_leaves_the_head_alone():
    """Replayed outcomes were already counted online: the head would be over-confident."""
    r, _ = two_armed_stream("thompson", n=50)
    before = {k: v.copy() for k, v in r._bayes.arrays().items()}
    r.train_batch(np.ones((4, 8)), ["cheap", "strong", "cheap", "strong"], [1.0, 0.0, 1.0, 0.0])
    assert all(np.array_equal(v, before[k]) for k, v in r._bayes.arrays().items())


def test_without_an_epsilon_floor_only_the_whole_posterior_tries_a_written_off_target_again():
    """Why a new router's defaults hang on ``epsilon`` (``default_policy``, ``default_thompson_scale``).
    After one unlucky outcome of the better target: UCB's bonus does not grow while a target waits,
    so with ``epsilon`` 0 the target is priced out for good (at alpha 1; the default 2 comes back
    here); a sample of the whole posterior strays past it soon and the target's outcomes bring it
    back; half the spread takes ~700 routes here; with an epsilon floor, UCB (the default there)
    comes back too."""
    def last_strong_share(policy: str, epsilon: float = 0.0, **settings) -> float:
        r = FastGRNNRouter(in_dim=4, targets=["cheap", "strong"], epsilon=epsilon, costs={"strong": 1.0},
                           cost_weight=0.15, seed=0, policy=policy, hidden=8, **settings)
        rng = np.random.default_rng(6)
        for i in range(20):
            r.record_outcome("cheap", float(i % 2), embedding=rng.standard_normal(4))
        r.record_outcome("strong", 0.0, embedding=rng.standard_normal(4))  # its one unlucky outcome
        chosen = []
        for _ in range(400):
            x = rng.standard_normal(4)
            model = r.route(x, draw=Draw.from_rng(rng))["model"]
            r.record_outcome(model, float(rng.random() < (0.9 if model == "strong" else 0.5)), embedding=x)
            chosen.append(model)
        return chosen[-100:].count("strong") / 100

    assert FastGRNNRouter(in_dim=4, targets=["a", "b"], epsilon=0.0, policy="thompson").thompson_scale == 1.0
    assert FastGRNNRouter(in_dim=4, targets=["a", "b"], epsilon=0.1, policy="thompson").thompson_scale == 0.5
    assert last_strong_share("ucb", ucb_alpha=1.0) < 0.05  # written off: worth 0.4 - 0.15 more, never tried again
    assert last_strong_share("ucb") > 0.8  # the default bound (alpha 2) is wider; bench.router_writeoff still finds write-offs
    assert last_strong_share("thompson", thompson_scale=0.5) < 0.05  # not yet
    assert last_strong_share("thompson") > 0.8  # the whole posterior, the default without a floor
    assert last_strong_share("ucb", epsilon=0.1) > 0.8
