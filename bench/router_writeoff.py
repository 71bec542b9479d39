"""How often a router's policy writes off the better model on a stream like issue 13's.

    python -m bench.router_writeoff [--seeds 100] [--routes 600] [--epsilons 0,0.1]

Two models with no learnable difference between prompts (8 random features): the cheap one right
64% of the time, the strong one 86% at a price of 0.15, so the strong one is worth its price on
every prompt. Each seed starts a router cold and routes ``--routes`` prompts with its own policy,
learning from the chosen model's outcome (in process, ``learn.FastGRNNRouter``). A seed counts as
**written off** when fewer than 10 of the last 100 routes went to the strong model. A policy that
knows what it does not know writes off none, given time; one whose exploration stops growing
(UCB's bound, a narrowed Thompson sample) can price the strong model out after a few unlucky
outcomes unless an ``epsilon`` floor keeps it tried. Results go to
``bench/results/router_writeoff.json``.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from bench._common import save
from learn import Draw, FastGRNNRouter

POLICIES = {  # name: FastGRNNRouter settings
    "thompson, whole posterior": {"policy": "thompson", "thompson_scale": 1.0},
    "thompson, half spread": {"policy": "thompson", "thompson_scale": 0.5},
    "ucb": {"policy": "ucb"},  # alpha 2; with an epsilon floor, it fades (epsilon_fade 50)
    "ucb, constant floor": {"policy": "ucb", "epsilon_fade": 0.0},
    "ucb, alpha 1": {"policy": "ucb", "ucb_alpha": 1.0},  # the default before the eighth pass
    "epsilon-greedy": {"policy": "epsilon"},
}
CHEAP, STRONG, PRICE = 0.64, 0.86, 0.15


def strong_routes(settings: dict, epsilon: float, seed: int, routes: int) -> int:
    """How many of the last 100 routes of one cold-started stream went to the strong model."""
    r = FastGRNNRouter(in_dim=8, targets=["cheap", "strong"], epsilon=epsilon, costs={"strong": 1.0},
                       cost_weight=PRICE, seed=0, hidden=8, **settings)
    rng = np.random.default_rng(seed)
    chosen = []
    for _ in range(routes):
        x = rng.standard_normal(8)
        model = r.route(x, draw=Draw.from_rng(rng))["model"]
        r.record_outcome(model, float(rng.random() < (STRONG if model == "strong" else CHEAP)), embedding=x)
        chosen.append(model)
    return chosen[-100:].count("strong")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--routes", type=int, default=600)
    ap.add_argument("--epsilons", default="0,0.1")
    args = ap.parse_args()
    if not 1 <= args.seeds <= 10_000 or not 100 <= args.routes <= 100_000:
        raise SystemExit("--seeds: 1-10000, --routes: 100-100000")
    epsilons = [float(e) for e in args.epsilons.split(",")]
    rows = []
    print("| epsilon | policy | seeds written off | strong share of the last 100 routes (median) |")
    print("|---|---|---:|---:|")
    for epsilon in epsilons:
        for name, settings in POLICIES.items():
            counts = [strong_routes(settings, epsilon, seed, args.routes) for seed in range(args.seeds)]
            off = sum(c < 10 for c in counts)
            rows.append({"epsilon": epsilon, "policy": name, "written_off": off, "seeds": args.seeds,
                         "median_strong_of_last_100": statistics.median(counts)})
            print(f"| {epsilon:g} | {name} | {off} of {args.seeds} | {statistics.median(counts) / 100:.2f} |",
                  flush=True)
    path = save("router_writeoff", {"settings": vars(args), "rows": rows})
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
