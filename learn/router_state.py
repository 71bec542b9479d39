"""The router's state out and in: every array and counter, checked on the way in.

The layout (``SCHEMA_VERSION`` 7): ``param.<name>`` for each learnable array, ``adagrad.<name>``,
``fisher.<name>`` and ``snapshot.<name>`` (the optimiser), ``mask``, ``norm.mean``/``norm.var``,
``ema``, ``outcomes``, the input-shift monitor's ``shift.*`` and, with a ``thompson`` or ``ucb``
policy, the Bayesian head's ``bayes.*`` (:mod:`learn.router_bayes`); scalars ``norm_n``,
``head_updates``, ``bucket_updates``, ``anchored``, ``rng`` (the generator of ``train_batch``) and
``shift``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learn.errors import StateError
from learn.state import State, expect_array, rng_from_json, rng_to_json

__all__ = ["from_state", "to_state", "upgrade"]


def to_state(r: Any) -> State:
    """The state of router ``r`` (a :class:`~learn.router.FastGRNNRouter`)."""
    arrays = {f"param.{k}": v for k, v in r._net.p.items()}
    arrays.update(r._opt.arrays())
    arrays.update(r._shift.arrays("shift"))
    if r._bayes is not None:
        arrays.update(r._bayes.arrays())
    arrays.update(
        {
            "mask": r._net.mask,
            "norm.mean": r._norm.mean,
            "norm.var": r._norm.var,
            "ema": r._ema,
            "outcomes": r._outcomes,
        }
    )
    return State(
        settings=r.settings(),
        scalars={
            "norm_n": r._norm.n,
            "head_updates": r._head_updates,
            "bucket_updates": r._bucket_updates,
            "anchored": sorted(r._opt.fisher),
            "rng": rng_to_json(r._rng),
            "shift": r._shift.scalars(),
        },
        arrays=arrays,
    )


def upgrade(cls: Any, state: State, version: int) -> State:
    """An older state in the current layout.

    Version 2 (before the input-shift monitor) gets a fresh monitor: it only observes, so the router
    learns on exactly as before, and it starts counting windows from the upgrade. Version 3 (before
    the choice policies) gets the policy settings at their defaults: ``policy`` is ``"epsilon"``,
    the only one there was, so the router routes and learns exactly as before. Versions 4 and 5
    (before ``thompson_scale``) get ``thompson_scale`` 1.0: their Thompson samples keep the
    posterior's whole spread, so they answer as they did. Versions 2 to 6 (before
    ``epsilon_fade``) get ``epsilon_fade`` 0: their epsilon floor stays constant, as it was.
    """
    if version in (4, 5, 6):
        added = {"epsilon_fade": 0.0} if version == 6 else {"thompson_scale": 1.0, "epsilon_fade": 0.0}
        for name in added:
            if name in state.settings:  # a state of that layout never had it
                raise StateError(f"router settings are invalid ({name})")
        return State({**state.settings, **added}, state.scalars, state.arrays)
    if version not in (2, 3):
        raise StateError(f"no upgrade from router layout {version}")
    if "policy" in state.settings:
        raise StateError("router settings are invalid (policy)")
    fresh = cls(**state.settings).to_state()  # the defaults of every newer setting
    settings = {**fresh.settings, **state.settings, "thompson_scale": 1.0, "epsilon_fade": 0.0}
    if version == 3:
        return State(settings, state.scalars, state.arrays)
    shift = {k: v for k, v in fresh.arrays.items() if k.startswith("shift.")}
    return State(settings, {**state.scalars, "shift": fresh.scalars["shift"]}, {**state.arrays, **shift})


def from_state(cls: Any, state: State) -> Any:
    """A router of class ``cls`` from ``state``; any check that fails raises StateError."""
    core = cls._from_settings(state)
    a, sc = state.arrays, state.scalars
    n, d, net = len(core.targets), core.in_dim, core._net
    for name, ref in net.p.items():
        ref[...] = expect_array(a, f"param.{name}", ref.shape)  # in place: heads are views
    anchored = sc["anchored"]
    core._opt.restore(a, anchored, net.p)
    net.mask = expect_array(a, "mask", (core.hidden, d), np.bool_)
    core._norm.restore(expect_array(a, "norm.mean", (d,)), expect_array(a, "norm.var", (d,)),
                       int(sc["norm_n"]))
    core._ema = expect_array(a, "ema", (n,))
    core._outcomes = expect_array(a, "outcomes", (n,), np.int64)
    core.derive_exploration()
    core._shift.restore(a, "shift", sc["shift"])
    bayes = 0
    if core._bayes is not None:
        core._bayes.restore(a)
        bayes = len(core._bayes.arrays())
    if len(a) != len(net.p) + len(core._opt.g2) + 2 * len(anchored) + 8 + bayes:
        raise StateError("router blob holds unexpected arrays")
    core._head_updates = int(sc["head_updates"])
    core._bucket_updates = int(sc["bucket_updates"])
    core._rng = rng_from_json(sc["rng"])
    net.derive()
    return core
