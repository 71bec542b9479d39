"""The router's default EWC lambda (3, measured in bench/README-learn.md, was 2000): new routers take
it, and a saved router keeps the lambda it was saved with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from learn import FastGRNNRouter, from_bytes, to_bytes

DATA = Path(__file__).parent / "data"


def test_a_new_router_takes_the_measured_default() -> None:
    r = FastGRNNRouter(in_dim=4, targets=["a", "b"])
    assert r.ewc_lambda == 3.0 and r.settings()["ewc_lambda"] == 3.0


@pytest.mark.parametrize("layout", ["v2", "v3"])
def test_a_saved_router_keeps_its_lambda(layout: str) -> None:
    old = from_bytes((DATA / f"{layout}-router.safetensors").read_bytes(), "router")
    assert old.ewc_lambda == 2000.0
    assert from_bytes(to_bytes(old), "router").ewc_lambda == 2000.0


def test_the_saved_lambda_is_the_one_that_pulls() -> None:
    """Two routers alike but for lambda, anchored alike, take different steps: the setting is used."""
    x = np.linspace(-1.0, 1.0, 6)
    routers = []
    for lam in (3.0, 2000.0):
        r = FastGRNNRouter(in_dim=6, targets=["a", "b"], seed=1, ewc_lambda=lam)
        for i in range(20):
            r.record_outcome("ab"[i % 2], float(i % 3 == 0), embedding=x * (i % 5))
        r.anchor({n: np.ones_like(v) for n, v in r.grads(x, "a", 1.0).items()})
        back = from_bytes(to_bytes(r), "router")
        for i in range(20):
            back.record_outcome("b", 1.0, embedding=-x)
        routers.append(back)
    assert not np.allclose(routers[0].expected_quality(-x), routers[1].expected_quality(-x))
