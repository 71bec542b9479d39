"""Forgetting under a shift: does EWC keep what the router learned on one group of MMLU subjects?

    python -m bench.forgetting_eval [--seeds 3] [--lambdas 3,10,100,2000] [--anchor heads|all]
        [--embedding minilm|tfidf] [--dim 384] [--triggers] [--clocks 500,2000]

Protocol, for each seed:

1. Group A = the STEM subjects, group B = the humanities and social-science subjects (disjoint;
   the "other" subjects are left out). Each group is shuffled with the seed and split 80/20 into a
   learning stream and a held-out test part.
2. One router (MiniLM embeddings, epsilon 1.0, the router's default optimizer and lr) streams group A online: it picks a model,
   sees only that model's outcome, learns. Alongside, an :class:`learn.EWC` core keeps the EWC++
   Fisher (``consolidate`` with the gradients of every observed outcome) and its loss ring receives
   the mean prequential loss of every window of 50 outcomes (the loss before learning from them).
3. At the end of A the router is copied (through its state blob): the copy "plain" goes on as
   is; one copy per EWC lambda is anchored with the Fisher and snapshot of the model head
   (``--anchor heads``, the default) or of all learnable arrays (``--anchor all``). All copies
   stream group B (same order, same exploration draws: each prompt's comes from the seed and its index).
4. Quality is measured on the held-out parts, before and after B, as (a) the routing loss: the mean
   binary cross-entropy of the router's expected quality for both models against both models'
   actual correctness (lower is better; the evaluation may look at both outcomes, the learner never
   does), and (b) APGR (as in ``bench.routing_eval``, frozen threshold sweep).

Forgetting on A = loss on A after B - loss on A before B (and the APGR drop). The targets: EWC
cuts the forgetting by half or more, and the quality on B with EWC is at least 95% of the plain
router's. Two boundary detectors are reported: EWC's loss ring (the reference: window means of
the prequential loss, z-score rule) and the router's input-shift monitor (:mod:`learn.shift`,
windows of 50 embeddings, carried through the state blob from A into B). For each: where it first
fired relative to the shift, how often in B, and how often on A (every fire on A is false).

``--triggers`` adds the service's own anchor (``anchor_router`` on the last 128 outcomes) taken at
a detected boundary, on a clock of N outcomes, both, or never, for every lambda
(:mod:`bench._ewc_triggers`). ``--embedding tfidf`` needs no torch.

Results: ``bench/results/forgetting_eval.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from bench import _embed, _ewc_triggers
from bench.routing_eval import STRONG, WEAK, apgr, threshold_curve
from learn import EWC, Draw, FastGRNNRouter, from_bytes, to_bytes

STEM = {
    "abstract_algebra", "astronomy", "college_biology", "college_chemistry",
    "college_computer_science", "college_mathematics", "college_physics", "computer_security",
    "conceptual_physics", "electrical_engineering", "elementary_mathematics",
    "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_mathematics", "high_school_physics", "high_school_statistics", "machine_learning",
}  # fmt: skip
HUMANITIES_SOCIAL = {
    "formal_logic", "high_school_european_history", "high_school_us_history",
    "high_school_world_history", "international_law", "jurisprudence", "logical_fallacies",
    "moral_disputes", "moral_scenarios", "philosophy", "prehistory", "professional_law",
    "world_religions", "econometrics", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_microeconomics", "high_school_psychology", "human_sexuality",
    "professional_psychology", "public_relations", "security_studies", "sociology",
    "us_foreign_policy",
}  # fmt: skip
HEADS = ("model.W", "model.b", "skip.W")  # the model head: read of the cell plus the skip path
WINDOW = 50


def routing_loss(r: FastGRNNRouter, E: np.ndarray, idx: np.ndarray, S: np.ndarray, W: np.ndarray) -> float:
    q = np.clip(np.array([r.expected_quality(E[i]) for i in idx]), 1e-7, 1 - 1e-7)
    y = np.stack([W[idx], S[idx]], axis=1).astype(float)  # columns follow r.targets
    return float(np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q))))


def routing_apgr(r: FastGRNNRouter, E: np.ndarray, idx: np.ndarray, S: np.ndarray, W: np.ndarray) -> float:
    q = np.array([r.expected_quality(E[i]) for i in idx])
    f, a = threshold_curve(q[:, 1] - q[:, 0], S[idx], W[idx])
    return apgr(f, a, float(S[idx].mean()), float(W[idx].mean()))


def quality(r: FastGRNNRouter, E, idx, S, W) -> dict[str, float]:
    return {"loss": routing_loss(r, E, idx, S, W), "apgr": routing_apgr(r, E, idx, S, W)}


def stream(
    r: FastGRNNRouter,
    E: np.ndarray,
    idx: np.ndarray,
    S: np.ndarray,
    W: np.ndarray,
    detector: EWC | None = None,
    fisher: EWC | None = None,
    names: tuple[str, ...] = (),
) -> tuple[list[bool], list[int]]:
    """Online bandit pass; feeds window-mean losses to ``detector`` and gradients to ``fisher``.

    Returns the loss ring's verdict per window, and the positions (in ``idx``) of the outcomes on
    which the router's input-shift monitor fired.
    """
    fired: list[bool] = []
    shifts: list[int] = []
    window: list[float] = []
    for pos, i in enumerate(idx):
        draw = Draw.from_rng(np.random.default_rng([r.seed, int(i)]))  # per prompt: copies agree
        choice = r.route(E[i], draw=draw)["model"]
        q = float(S[i] if choice == STRONG else W[i])
        if detector is not None:
            window.append(r.loss(E[i], choice, q))
            if len(window) == WINDOW:
                fired.append(detector.record_loss(float(np.mean(window))))
                window = []
        if fisher is not None:
            params = r.params()
            for name, g in r.grads(E[i], choice, q).items():
                if name in names:
                    fisher.consolidate(name, params[name], g)
        if r.record_outcome(choice, q, embedding=E[i]):
            shifts.append(pos)
    return fired, shifts


def topic_split(data: _embed.Outcomes, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step 1 of the protocol: (A stream, A test, B stream, B test) prompt indices for ``seed``."""
    subjects = np.array(data.subjects)
    rng = np.random.default_rng(seed)

    def split(group: set[str]) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.permutation(np.flatnonzero(np.isin(subjects, sorted(group))))
        cut = int(round(0.8 * len(idx)))
        return idx[:cut], idx[cut:]

    return (*split(STEM), *split(HUMANITIES_SOCIAL))


def run_seed(data: _embed.Outcomes, E: np.ndarray, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    S, W = data.strong, data.weak
    a_stream, a_test, b_stream, b_test = topic_split(data, seed)
    kw = {} if args.lr is None else {"lr": args.lr}
    router = FastGRNNRouter(in_dim=E.shape[1], targets=[WEAK, STRONG], epsilon=1.0, seed=seed, **kw)
    names = HEADS if args.anchor == "heads" else tuple(router.param_names())
    names = tuple(n for n in names if n.startswith(("model.", "cell.", "skip.")) and n in router.param_names())
    deep = EWC()
    fired_a, shifts_a = stream(router, E, a_stream, S, W, detector=deep, fisher=deep, names=names)
    before = {"A": quality(router, E, a_test, S, W), "B": quality(router, E, b_test, S, W)}

    blob = to_bytes(router)
    plain = from_bytes(blob, "router")
    fired_b, shifts_b = stream(plain, E, b_stream, S, W, detector=deep)
    after = {"plain": {"A": quality(plain, E, a_test, S, W), "B": quality(plain, E, b_test, S, W)}}
    for lam in args.lambdas:
        anchored = from_bytes(blob, "router")
        anchored.ewc_lambda = lam
        anchored.anchor({n: deep.fisher(n) for n in names}, {n: deep.snapshot(n) for n in names})
        stream(anchored, E, b_stream, S, W)
        after[f"ewc_{lam:g}"] = {
            "A": quality(anchored, E, a_test, S, W),
            "B": quality(anchored, E, b_test, S, W),
        }
    triggers = None
    if args.triggers:
        def both(r: FastGRNNRouter) -> dict[str, dict[str, float]]:
            return {"A": quality(r, E, a_test, S, W), "B": quality(r, E, b_test, S, W)}

        triggers = _ewc_triggers.run_seed(E, S, W, seed, a_stream, b_stream, both, args.lambdas, args.clocks)
    warm = 3  # the first windows cannot fire (min_history)
    return {
        "seed": seed,
        "sizes": {"A_stream": len(a_stream), "A_test": len(a_test), "B_stream": len(b_stream), "B_test": len(b_test)},
        "before": before,
        "after": after,
        "triggers": triggers,
        "forgetting_loss": {k: after[k]["A"]["loss"] - before["A"]["loss"] for k in after},
        "forgetting_apgr": {k: before["A"]["apgr"] - after[k]["A"]["apgr"] for k in after},
        "boundary": {
            "windows_A": len(fired_a),
            "false_alarms_A": int(sum(fired_a[warm:])),
            "fired_in_first_3_windows_of_B": bool(any(fired_b[:3])),
            "first_fire_window_B": next((i for i, f in enumerate(fired_b) if f), None),
            "fires_B": int(sum(fired_b)),
            "windows_B": len(fired_b),
        },
        "input_shift": {
            # the router's windows run on across the shift: the first one that holds B outcomes
            # ends (-len(A)) % window outcomes into B
            "fires_A": len(shifts_a),
            "fires_A_at": shifts_a,
            "first_fire_B_outcomes_after_shift": (shifts_b[0] + 1) if shifts_b else None,
            "first_possible_fire_B_outcomes_after_shift": (-len(a_stream)) % router.shift_window
            or router.shift_window,
            "fires_B": len(shifts_b),
            "fires_B_at": shifts_b,
            "windows_A": len(a_stream) // router.shift_window,
            "windows_B": len(b_stream) // router.shift_window,
            "boundaries": plain.boundaries,
        },
    }


def table(runs: list[dict]) -> str:
    def m(get) -> str:
        v = np.array([get(r) for r in runs])
        return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v[0]:.3f}"

    lines = [
        "| router | loss on A | APGR on A | loss on B | APGR on B | forgetting on A: loss increase "
        "(EWC / plain) | forgetting on A: APGR drop (EWC / plain) | B APGR vs plain | "
        "B APGR above random vs plain |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| after A (before B) | {m(lambda r: r['before']['A']['loss'])} | {m(lambda r: r['before']['A']['apgr'])} | "
        f"{m(lambda r: r['before']['B']['loss'])} | {m(lambda r: r['before']['B']['apgr'])} | | | | |",
    ]
    for key in runs[0]["after"]:
        def fl(r, k=key):
            return r["after"][k]["A"]["loss"] - r["before"]["A"]["loss"]

        def fa(r, k=key):
            return r["before"]["A"]["apgr"] - r["after"][k]["A"]["apgr"]

        row = (
            f"| after B, {key.replace('_', ' lambda ')} | {m(lambda r: r['after'][key]['A']['loss'])} | "
            f"{m(lambda r: r['after'][key]['A']['apgr'])} | {m(lambda r: r['after'][key]['B']['loss'])} | "
            f"{m(lambda r: r['after'][key]['B']['apgr'])} | {m(fl)}"
        )
        if key == "plain":
            row += f" | {m(fa)} | | |"
        else:
            row += (
                f" ({m(lambda r: fl(r) / fl(r, 'plain'))}) | {m(fa)} ({m(lambda r: fa(r) / fa(r, 'plain'))}) | "
                f"{m(lambda r: r['after'][key]['B']['apgr'] / r['after']['plain']['B']['apgr'])} | "
                f"{m(lambda r: (r['after'][key]['B']['apgr'] - 0.5) / (r['after']['plain']['B']['apgr'] - 0.5))} |"
            )
        lines.append(row)
    b = [r["boundary"] for r in runs]
    s = [r["input_shift"] for r in runs]
    lines += [
        "",
        f"Boundary detector (window means of {WINDOW} prequential losses into the EWC loss ring): "
        f"fired within the first 3 windows of B in {sum(x['fired_in_first_3_windows_of_B'] for x in b)} "
        f"of {len(b)} seeds (first fire at B window {[x['first_fire_window_B'] for x in b]}); "
        f"fires on B {[x['fires_B'] for x in b]} of {b[0]['windows_B']} windows; false alarms on A "
        f"after warm-up {[x['false_alarms_A'] for x in b]} of {b[0]['windows_A'] - 3} windows.",
        "",
        "Router input-shift monitor (windows of 50 embeddings; every fire on A is false): first fire "
        f"{[x['first_fire_B_outcomes_after_shift'] for x in s]} outcomes after the shift (earliest "
        f"possible {[x['first_possible_fire_B_outcomes_after_shift'] for x in s]}); fires on B "
        f"{[x['fires_B'] for x in s]} of {[x['windows_B'] for x in s]} windows, at B outcomes "
        f"{[x['fires_B_at'] for x in s]}; fires on A {[x['fires_A'] for x in s]} of "
        f"{[x['windows_A'] for x in s]} windows.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lambdas", default="3,10,100,2000", help="EWC lambdas to compare")
    ap.add_argument("--anchor", choices=["heads", "all"], default="heads")
    ap.add_argument("--lr", type=float, default=None, help="router default unless given")
    ap.add_argument("--embedding", default="minilm", choices=["minilm", "tfidf"])
    ap.add_argument("--dim", type=int, default=384, help="tfidf: SVD dimensions (MiniLM: 384)")
    ap.add_argument("--triggers", action="store_true", help="also the service's anchor: boundary / clock / none")
    ap.add_argument("--clocks", default="500,2000", help="--triggers: clock periods, in outcomes")
    ap.add_argument("--out", default="forgetting_eval")
    args = ap.parse_args()
    args.clocks = [int(x) for x in args.clocks.split(",") if x.strip()]
    args.lambdas = [float(x) for x in args.lambdas.split(",") if x.strip()]
    data = _embed.load_mmlu()
    if args.embedding == "tfidf" and args.dim != 384:  # fitted on all prompts (no labels), as at 384
        E = _embed.tfidf_svd_embeddings(data.prompts, data.prompts, dim=args.dim)
    else:
        E = _embed.embeddings(args.embedding, data)
    runs = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        run = run_seed(data, E, seed, args)
        run["seconds"] = time.perf_counter() - t0
        runs.append(run)
        print(
            f"seed {seed}: forgetting on A (loss increase) "
            + ", ".join(f"{k} {v:+.4f}" for k, v in run["forgetting_loss"].items())
            + f" [{run['seconds']:.0f}s]",
            flush=True,
        )
    _embed.RESULTS.mkdir(parents=True, exist_ok=True)
    path = _embed.RESULTS / f"{args.out}.json"
    path.write_text(json.dumps({"settings": vars(args), "runs": runs}, indent=1))
    print(f"\nA = STEM, B = humanities + social sciences; anchor = {args.anchor}; mean ± sd over {len(runs)} seeds\n")
    print(table(runs))
    if args.triggers:
        print("\nThe service's anchor (anchor_router on the last 128 outcomes), by trigger; mean ± sd over seeds\n")
        print(_ewc_triggers.table([r["triggers"] for r in runs]))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
