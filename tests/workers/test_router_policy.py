"""The router's choice policy through the service's verbs (real Redis and worker): a new router
without an epsilon floor samples its Bayesian head's whole posterior from a cold start, learns the
price-adjusted better target, answers alike to equal requests, and keeps its head across a restart
of the reading process; with a floor it takes UCB's bound unless told otherwise."""

from __future__ import annotations

import numpy as np

import learn
from service.root import Session
from workers.store_keys import StateKeys
from workers.store_record import Record


def test_a_new_router_samples_from_a_cold_start_and_learns_the_worthwhile_target(
        workers, learn_session, settings) -> None:
    ns, dim = "policy", 6
    d = learn_session.dispatch
    workers("w1")
    init = d({"verb": "init_router", "body": {"namespace": ns, "targets": ["cheap", "strong"], "in_dim": dim,
                                               "epsilon": 0.0, "costs": {"strong": 1.0}, "cost_weight": 0.15}})
    assert init["ok"] and init["data"]["policy"] == "thompson", init
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(dim).tolist() for _ in range(120)]
    first = [d({"verb": "route", "body": {"namespace": ns, "embedding": x}})["data"]["model"] for x in xs[:40]]
    assert set(first) == {"cheap", "strong"}  # the prior is uncertain: both are tried from the start
    outcome_rng = np.random.default_rng(4)
    chosen = []
    for x in xs:
        model = d({"verb": "route", "body": {"namespace": ns, "embedding": x}})["data"]["model"]
        chosen.append(model)
        quality = float(outcome_rng.random() < (0.9 if model == "strong" else 0.5))  # strong worth 0.15
        assert d({"verb": "record_outcome", "body": {"namespace": ns, "target": model, "quality": quality,
                                                     "embedding": x}})["ok"]
    assert chosen[-40:].count("strong") > 30, chosen  # not collapsed onto the cheap target
    probe = rng.standard_normal(dim).tolist()
    req = {"verb": "route", "body": {"namespace": ns, "embedding": probe}}
    answer = d(req)
    assert answer["ok"] and d(req) == answer  # a read: equal requests on equal state answer alike
    with Session(settings) as fresh:  # another process loads the stored state: the same answer
        assert fresh.dispatch(req) == answer
    state = Record.decode(learn_session.learning.store.r.get(StateKeys.of(ns, "router").blob), ns, "router").state
    router = learn.from_bytes(state, "router")
    assert router.policy == "thompson" and router.thompson_scale == 1.0  # no epsilon floor: the whole posterior
    assert router.outcome_counts["strong"] > router.outcome_counts["cheap"]
    mean = router.expected_quality(probe)
    assert mean[1] - mean[0] > 0.15  # the head's estimates, on the price's scale


def test_a_router_with_an_epsilon_floor_takes_ucb_unless_told_otherwise(workers, learn_session) -> None:
    d = learn_session.dispatch
    workers("w1")
    for ns, extra, policy, scale, fade in [
            ("floor", {}, "ucb", 0.5, 50.0), ("floor-ts", {"policy": "thompson"}, "thompson", 0.5, 50.0),
            ("nofloor-ucb", {"epsilon": 0.0, "policy": "ucb"}, "ucb", 1.0, 0.0),
            ("constant", {"epsilon_fade": 0}, "ucb", 0.5, 0.0), ("greedy", {"policy": "epsilon"}, "epsilon", 0.5, 0.0)]:
        out = d({"verb": "init_router", "body": {"namespace": ns, "targets": ["a", "b"], "in_dim": 4, **extra}})
        assert out["ok"] and (out["data"]["policy"], out["data"]["epsilon_fade"]) == (policy, fade), out
        state = Record.decode(learn_session.learning.store.r.get(StateKeys.of(ns, "router").blob), ns, "router").state
        router = learn.from_bytes(state, "router")
        assert (router.policy, router.thompson_scale, router.epsilon_fade) == (policy, scale, fade)
        assert router.ucb_alpha == out["data"]["ucb_alpha"] == 2.0  # the default bound


def test_init_router_takes_ucb_alpha_within_its_bounds(workers, learn_session) -> None:
    d = learn_session.dispatch
    workers("w1")
    for bad in (-0.5, 10.5, "2", float("nan")):
        out = d({"verb": "init_router", "body": {"namespace": "alpha", "targets": ["a", "b"], "in_dim": 4,
                                                  "ucb_alpha": bad}})
        assert out["ok"] is False and out["error"].startswith("ucb_alpha:"), out
    assert d({"verb": "route", "body": {"namespace": "alpha", "embedding": [0.0] * 4}})["ok"] is False  # none made
    out = d({"verb": "init_router", "body": {"namespace": "alpha", "targets": ["a", "b"], "in_dim": 4, "ucb_alpha": 1}})
    assert out["ok"] and out["data"]["ucb_alpha"] == 1.0, out
    state = Record.decode(learn_session.learning.store.r.get(StateKeys.of("alpha", "router").blob), "alpha", "router").state
    assert learn.from_bytes(state, "router").ucb_alpha == 1.0
    assert d({"verb": "health", "body": {"namespace": "alpha"}})["data"]["cores"]["router"]["ucb_alpha"] == 1.0


def test_the_epsilon_floor_fades_through_the_service_and_health_shows_it(workers, learn_session) -> None:
    """init_router's ``epsilon_fade``, refused out of bounds with its name; ``health`` shows the
    exploration rate, which falls once the least-tried target has more outcomes than the fade."""
    d = learn_session.dispatch
    workers("w1")
    for bad in (-1, 1e10, "5"):
        out = d({"verb": "init_router", "body": {"namespace": "fade", "targets": ["a", "b"], "in_dim": 4,
                                                  "epsilon_fade": bad}})
        assert out["ok"] is False and out["error"].startswith("epsilon_fade:"), out
    assert d({"verb": "init_router", "body": {"namespace": "fade", "targets": ["a", "b"], "in_dim": 4,
                                              "epsilon_fade": 4}})["ok"]
    x = [0.1, 0.2, 0.3, 0.4]
    for target in ["a"] * 10 + ["b"] * 8:
        assert d({"verb": "record_outcome", "body": {"namespace": "fade", "target": target, "quality": 1.0,
                                                     "embedding": x}})["ok"]
    router = d({"verb": "health", "body": {"namespace": "fade"}})["data"]["cores"]["router"]
    assert router["policy"] == "ucb" and router["outcomes"] == {"a": 10, "b": 8}
    assert router["exploration_rate"] == 0.1 * (4 / 8)


def test_init_router_keeps_epsilon_greedy_on_request_and_refuses_an_unknown_policy(
        workers, learn_session) -> None:
    d = learn_session.dispatch
    workers("w1")
    out = d({"verb": "init_router", "body": {"namespace": "eps", "targets": ["a", "b"], "in_dim": 4,
                                              "policy": "epsilon"}})
    assert out["ok"] and out["data"]["policy"] == "epsilon", out
    bad = d({"verb": "init_router", "body": {"namespace": "eps", "targets": ["a", "b"], "in_dim": 4,
                                              "policy": "greedy"}})
    assert bad["ok"] is False and bad["error"].startswith("policy:"), bad
    bad = d({"verb": "init_router", "body": {"namespace": "eps", "targets": ["a", "b"], "in_dim": 4, "epsilon": 2}})
    assert bad["ok"] is False and bad["error"].startswith("epsilon:"), bad  # not the policy it would set
    state = learn.from_bytes(Record.decode(learn_session.learning.store.r.get(StateKeys.of("eps", "router").blob),
                                           "eps", "router").state, "router")
    assert state.policy == "epsilon"  # the refused request changed nothing


def test_route_without_exploration_answers_the_greedy_choice(workers, learn_session) -> None:
    ns, dim = "greedy", 4
    d = learn_session.dispatch
    workers("w1")
    assert d({"verb": "init_router", "body": {"namespace": ns, "targets": ["a", "b", "c"], "in_dim": dim,
                                               "epsilon": 0.5}})["ok"]
    rng = np.random.default_rng(5)
    for i in range(30):
        x = rng.standard_normal(dim).tolist()
        assert d({"verb": "record_outcome", "body": {"namespace": ns, "target": "abc"[i % 3],
                                                     "quality": float(i % 3 == 1), "embedding": x}})["ok"]
    state = Record.decode(learn_session.learning.store.r.get(StateKeys.of(ns, "router").blob), ns, "router").state
    router = learn.from_bytes(state, "router")
    xs = [rng.standard_normal(dim).tolist() for _ in range(60)]
    explored = [d({"verb": "route", "body": {"namespace": ns, "embedding": x}})["data"] for x in xs]
    greedy = [d({"verb": "route", "body": {"namespace": ns, "embedding": x, "explore": False}})["data"] for x in xs]
    assert sum(a["exploration"] for a in explored) > 10  # epsilon 0.5: the default explores
    assert not any(a["exploration"] for a in greedy)
    assert [a["model"] for a in greedy] == ["abc"[int(np.argmax(router.expected_quality(x)))] for x in xs]
    assert [a["model"] for a in greedy] != [a["model"] for a in explored]
    bad = d({"verb": "route", "body": {"namespace": ns, "embedding": xs[0], "explore": "no"}})
    assert bad["ok"] is False and bad["error"].startswith("explore"), bad
