"""Does the nearest pattern's per-target quality predict which model answers a held-out prompt?

    python -m bench.pattern_eval [--seeds 5] [--seed-start 0] [--k 16,64,256] [--embeddings tfidf]
        [--stream both|random] [--max-trajectories 1024]

RouteLLM's MMLU outcomes (``bench/_embed.py``: GPT-4-1106 and Mixtral-8x7B correctness on 14,037
prompts). For each seed:

1. The prompts are shuffled with the seed; the first 70% are the learning stream, the rest are
   held out. Embeddings: TF-IDF + SVD to 384 dimensions fitted on the stream's prompts only.
2. The stream is recorded as trajectories into a :class:`learn.PatternBank` (384 dimensions,
   ``max_trajectories`` 1,024, so the bank clusters every time its buffer fills, as it would between
   beat runs, and once at the end). A trajectory is what one request did: the prompt's embedding,
   one step (the same embedding, the model that answered) and the quality (1 if that model was
   right, else 0). ``--stream both`` (the default) records both models' outcomes of every stream
   prompt as two trajectories, because the shipped data holds both and a service that logs every
   request to either model sees exactly that (the full-information stream); ``--stream random``
   records one trajectory per prompt with the model drawn at random (what a 50/50 routed deployment
   would have logged: half the information).
3. For each held-out prompt, the score is the nearest pattern's (``find(x, 1)``) mean quality of
   GPT-4 minus that of Mixtral (a target the pattern never saw takes the stream's mean for it).
   AUC of that score at telling, on the held-out prompts where exactly one model is right, whether
   it is GPT-4. 0.5 is chance.
4. References on the same prompts and the same stream: the FastGRNN router trained on it as the
   service trains it (``record_outcome`` with the embedding for every trajectory in stream order,
   plus the beat's batch training and replay, :class:`bench.routing_eval.Beat`), scored by its own
   ``expected_quality`` difference; the mean GPT-4 - Mixtral gap of the 20 nearest stream prompts
   (no clustering: what the embedding's neighbourhood holds); and the per-subject gap (uses the MMLU
   subject labels, which neither sees).

Results: ``bench/results/pattern_eval.json`` and a markdown table (medians over seeds) on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from bench import _embed
from bench.routing_eval import STRONG, WEAK, Beat, make_router
from learn import PatternBank

NEIGHBOURS = 20
SHRINK = 20.0


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(label, score))


def stream_rows(order: np.ndarray, strong: np.ndarray, weak: np.ndarray, mode: str,
                seed: int) -> list[tuple[int, str, float]]:
    """(prompt, model, quality) of the learning stream, in stream order."""
    if mode == "both":
        return [(int(i), t, float(ok[i])) for i in order for t, ok in ((STRONG, strong), (WEAK, weak))]
    pick = np.random.default_rng([seed, 1]).random(len(order)) < 0.5
    return [(int(i), STRONG if p else WEAK, float(strong[i] if p else weak[i])) for i, p in zip(order, pick)]


def bank_scores(E: np.ndarray, rows: list, test: np.ndarray, k: int, seed: int,
                max_trajectories: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Scores of the held-out prompts from the nearest pattern: ``raw`` (its per-target means) and
    ``shrunk`` (each mean pulled to the stream's mean of that target with the weight of
    ``SHRINK`` trajectories, so a small pattern's noisy gap counts less)."""
    bank = PatternBank(dim=E.shape[1], targets=[WEAK, STRONG], max_trajectories=max_trajectories, k=k, seed=seed)
    t0 = time.perf_counter()
    for at, (i, target, q) in enumerate(rows):
        bank.record({"embedding": E[i], "steps": [{"embedding": E[i], "target": target}], "quality": q}, at)
    bank.cluster()
    record_s = time.perf_counter() - t0
    prior = {t: float(np.mean([q for _, tt, q in rows if tt == t])) for t in (WEAK, STRONG)}

    def mean(p: dict, t: str, shrink: float) -> float:
        n, m = p["targets"][t]["count"], p["targets"][t]["mean_quality"]
        return (n * (m or 0.0) + shrink * prior[t]) / (n + shrink) if n or shrink else prior[t]

    t0 = time.perf_counter()
    found = [bank.find(E[i], 1)[0] for i in test]
    find_us = (time.perf_counter() - t0) / len(test) * 1e6
    scores = {name: np.array([mean(p, STRONG, a) - mean(p, WEAK, a) for p in found])
              for name, a in (("raw", 0.0), ("shrunk", SHRINK))}
    counts = [p["count"] for p in bank.find(E[test[0]], k)]
    return scores, {"patterns": bank.patterns, "clusterings": bank.clusterings, "record_and_cluster_s": record_s,
                    "find_us": find_us, "smallest_pattern": min(counts), "largest_pattern": max(counts)}


def router_scores(E: np.ndarray, rows: list, test: np.ndarray, seed: int) -> np.ndarray:
    router = make_router(E.shape[1], seed, 0.0, {})
    beat = Beat(E, seed)
    for i, target, q in rows:
        router.record_outcome(target, q, embedding=E[i])
        beat.observe(router, i, target, q)
    q = np.array([router.expected_quality(E[i]) for i in test])
    return q[:, router.targets.index(STRONG)] - q[:, router.targets.index(WEAK)]


def neighbour_scores(E: np.ndarray, rows: list, test: np.ndarray) -> np.ndarray:
    """Mean GPT-4 minus mean Mixtral quality over the 20 nearest stream prompts (cosine)."""
    prompts = np.array(sorted({i for i, _, _ in rows}))
    pos = {int(i): j for j, i in enumerate(prompts)}
    sums, counts = np.zeros((len(prompts), 2)), np.zeros((len(prompts), 2))
    for i, t, q in rows:
        sums[pos[i], int(t == STRONG)] += q
        counts[pos[i], int(t == STRONG)] += 1
    near = np.argsort(-(E[test] @ E[prompts].T), axis=1)[:, :NEIGHBOURS]
    s, c = sums[near].sum(axis=1), np.maximum(counts[near].sum(axis=1), 1)
    return s[:, 1] / c[:, 1] - s[:, 0] / c[:, 0]


def run_seed(data: _embed.Outcomes, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    n = len(data)
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(0.7 * n))
    train, test = order[:cut], order[cut:]
    E = _embed.embeddings(args.embeddings, data, fit_index=train if args.embeddings == "tfidf" else None)
    S, W = data.strong, data.weak
    rows = stream_rows(train, S, W, args.stream, seed)
    one = S[test] != W[test]  # exactly one model right
    label = S[test][one]
    out: dict[str, Any] = {"seed": seed, "n_stream": int(len(train)), "n_trajectories": len(rows),
                           "n_heldout": int(len(test)), "n_exactly_one_right": int(one.sum()),
                           "gpt4_right_share": float(label.mean()), "auc": {}, "banks": {}}
    for k in args.k:
        for name, size in (("", args.max_trajectories), ("_one_shot", len(rows))):
            scores, info = bank_scores(E, rows, test, k, seed, size)
            for kind, score in scores.items():
                out["auc"][f"patterns_k{k}{name}_{kind}"] = auc(score[one], label)
            out["banks"][f"k{k}{name}"] = info
    t0 = time.perf_counter()
    out["auc"]["router"] = auc(router_scores(E, rows, test, seed)[one], label)
    out["router_s"] = time.perf_counter() - t0
    out["auc"][f"nearest_{NEIGHBOURS}_prompts"] = auc(neighbour_scores(E, rows, test)[one], label)
    subjects = np.array(data.subjects)
    gap = {u: S[train][subjects[train] == u].mean() - W[train][subjects[train] == u].mean()
           for u in set(subjects[train])}
    out["auc"]["per_subject_gap"] = auc(np.array([gap.get(u, 0.0) for u in subjects[test]])[one], label)
    out["auc"]["chance"] = 0.5
    return out


def table(runs: list[dict]) -> str:
    """Medians over seeds, the range, and the median of the per-seed difference to the router."""
    names = list(runs[0]["auc"])
    router = np.array([r["auc"]["router"] for r in runs])
    lines = ["| score | AUC (median) | min - max over seeds | minus the router's, per seed (median) |",
             "|---|---:|---:|---:|"]
    for name in names:
        v = np.array([r["auc"][name] for r in runs])
        lines.append(f"| {name} | {np.median(v):.3f} | {v.min():.3f} - {v.max():.3f} | "
                     f"{np.median(v - router):+.3f} |")
    return "\n".join(lines)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--k", default="16,64,256", help="pattern-bank sizes, comma-separated")
    ap.add_argument("--embeddings", default="tfidf", choices=["tfidf", "minilm"])
    ap.add_argument("--stream", default="both", choices=["both", "random"])
    ap.add_argument("--max-trajectories", type=int, default=1024)
    args = ap.parse_args()
    args.k = [int(x) for x in args.k.split(",")]
    data = _embed.load_mmlu()
    runs = []
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        t0 = time.perf_counter()
        runs.append(run_seed(data, seed, args))
        print(f"seed {seed}: {json.dumps(runs[-1]['auc'])} ({time.perf_counter() - t0:.0f} s)", flush=True)
    _embed.RESULTS.mkdir(parents=True, exist_ok=True)
    path = _embed.RESULTS / f"pattern_eval_{args.stream}.json"
    path.write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1))
    print(table(runs))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
