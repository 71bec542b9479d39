"""Does base + micro adapter forget less than the micro adapter alone across a topic shift?

    python -m bench.adapter_forgetting [--seeds 5] [--every 64] [--lr-min 0.001] [--embedding tfidf]

Issue 14, evidence 4(a). Pure numpy learning (the cores of :mod:`learn`), TF-IDF + SVD embeddings
(:mod:`bench._embed`, no torch). The protocol is :mod:`bench.forgetting_eval`'s, for each seed:

1. Group A = the STEM subjects, group B = the humanities and social sciences; each group is
   shuffled with the seed and split 80/20 into a learning stream and a held-out test part (the
   same split as ``bench.forgetting_eval``).
2. Feedback: for each prompt of the stream, one of the two models is drawn uniformly (the draw
   comes from the seed and the prompt's index, so every variant sees the same events) and the
   adapter gets ``feedback`` with quality 1 if that model answered correctly, else 0.
3. The variants stream A, then B: ``micro`` is a MicroLoRA alone (the service's defaults);
   ``base+micro`` is the same core with ``consolidate()`` every ``--every`` feedback events (the
   beat job's ``KG_BASE_MIN_UPDATES``), with the service's BaseLoRA defaults; further rows change
   one BaseLoRA setting at a time (no EWC pull, a stronger one, the micro adapter emptied instead of
   halved, another interval).
4. Measured on A's held-out part after A and after B, and on B's after B.
5. A reference for what a linear adapter could learn from the same events: ridge regression
   (``alpha`` 1, offline, per model: the embedding to ``2 * quality - 1`` of that model's events),
   fitted on the A events, then on the A and B events.

The measure is the AUC of the logit difference ``logit(GPT-4) - logit(Mixtral)`` at telling, on
the held-out prompts where exactly one of the two models is correct, whether it is GPT-4. Why not
the accuracy of the preferred model: GPT-4 is correct on most prompts, so "always GPT-4" is
nearly the best accuracy there is, and an adapter reaches it from its first few events (its logit
difference only needs the right sign on average); the accuracy then barely moves whatever the
adapter learned or forgot about particular prompts. The AUC ignores that constant preference and
measures the per-prompt ranking, which is what learning a topic adds and forgetting removes; 0.5
is no knowledge. The accuracy is reported next to it all the same.

Forgetting on A = AUC on A after A - AUC on A after B. Medians over the seeds (and the range).
Results: ``bench/results/adapter_forgetting_lrmin<lr_min>.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from bench import _embed
from bench.forgetting_eval import STEM, topic_split
from learn import MicroLoRA

STRONG, WEAK = _embed.STRONG, _embed.WEAK
TARGETS = [WEAK, STRONG]


REFERENCE = "reference: ridge regression, offline"


def variants(every: int) -> dict[str, dict[str, Any]]:
    """Name -> (consolidation interval or None, MicroLoRA settings beyond the defaults)."""
    return {
        "micro": {"every": None, "settings": {}},
        "base+micro": {"every": every, "settings": {}},
        "base+micro, no EWC pull (lambda 0)": {"every": every, "settings": {"base_lambda": 0.0}},
        "base+micro, lambda 10": {"every": every, "settings": {"base_lambda": 10.0}},
        "base+micro, micro emptied (scale 0)": {"every": every, "settings": {"base_micro_scale": 0.0}},
        f"base+micro, every {every // 2}": {"every": every // 2, "settings": {}},
        f"base+micro, every {every * 4}": {"every": every * 4, "settings": {}},
    }


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney AUC of ``score`` for ``label`` (ties count half)."""
    pos, neg = score[label], score[~label]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    allv = np.concatenate([pos, neg])[order]
    # average ranks of ties
    start = 0
    for end in range(1, len(allv) + 1):
        if end == len(allv) or allv[end] != allv[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2.0
            start = end
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def measure(lora: MicroLoRA, E: np.ndarray, idx: np.ndarray, S: np.ndarray, W: np.ndarray) -> dict[str, float]:
    """The adapter's logits are ``x @ (A.T B + base_A.T base_B)`` (what ``apply`` answers, in one product)."""
    p = lora.params()
    return measure_matrix(p["A"].T @ p["B"] + p["base_A"].T @ p["base_B"], E, idx, S, W)


def ridge_reference(E: np.ndarray, events: list[tuple[int, bool, float]], alpha: float = 1.0) -> np.ndarray:
    """Per target (columns follow TARGETS) the ridge weights of ``2 * quality - 1`` on the embedding."""
    cols = []
    for strong in (False, True):
        rows = [(i, q) for i, st, q in events if st == strong]
        X = E[[i for i, _ in rows]]
        y = np.array([2.0 * q - 1.0 for _, q in rows])
        cols.append(np.linalg.solve(X.T @ X + alpha * np.eye(E.shape[1]), X.T @ y))
    return np.stack(cols, axis=1)


def measure_matrix(Wm: np.ndarray, E: np.ndarray, idx: np.ndarray, S: np.ndarray, W: np.ndarray) -> dict[str, float]:
    diff = E[idx] @ (Wm[:, 1] - Wm[:, 0])
    s, w = S[idx], W[idx]
    one = s != w
    return {"auc": auc(diff[one], s[one]), "accuracy": float(np.where(diff >= 0, s, w).mean()),
            "prefers_strong": float((diff >= 0).mean())}


def events_of(idx: np.ndarray, S: np.ndarray, W: np.ndarray, seed: int) -> list[tuple[int, bool, float]]:
    """The feedback events of a stream: (prompt, GPT-4 drawn?, quality), the same for every variant."""
    out = []
    for i in idx:
        strong = bool(np.random.default_rng([seed, int(i)]).random() < 0.5)
        out.append((int(i), strong, float(S[i] if strong else W[i])))
    return out


def stream(lora: MicroLoRA, E: np.ndarray, events: list[tuple[int, bool, float]], every: int | None) -> int:
    consolidated = 0
    for i, strong, quality in events:
        lora.learn(E[i], STRONG if strong else WEAK, quality)
        if every is not None and lora.pending_updates >= every:
            before = lora.consolidations
            lora.consolidate()
            consolidated += lora.consolidations - before
    return consolidated


def run_seed(data: _embed.Outcomes, E: np.ndarray, seed: int, every: int, lr_min: float = 1e-3) -> dict[str, Any]:
    S, W = data.strong, data.weak
    a_stream, a_test, b_stream, b_test = topic_split(data, seed)
    out: dict[str, Any] = {"seed": seed, "sizes": {"A_stream": len(a_stream), "A_test": len(a_test),
                                                   "B_stream": len(b_stream), "B_test": len(b_test)}}
    a_events, b_events = events_of(a_stream, S, W, seed), events_of(b_stream, S, W, seed)
    for name, v in variants(every).items():
        lora = MicroLoRA(targets=TARGETS, in_dim=E.shape[1], seed=seed, lr_min=lr_min, **v["settings"])
        n_a = stream(lora, E, a_events, v["every"])
        after_a = measure(lora, E, a_test, S, W)
        n_b = stream(lora, E, b_events, v["every"])
        out[name] = {"A_after_A": after_a, "A_after_B": measure(lora, E, a_test, S, W),
                     "B_after_B": measure(lora, E, b_test, S, W), "consolidations": n_a + n_b}
    on_a, on_ab = ridge_reference(E, a_events), ridge_reference(E, a_events + b_events)
    out[REFERENCE] = {"A_after_A": measure_matrix(on_a, E, a_test, S, W),
                      "A_after_B": measure_matrix(on_ab, E, a_test, S, W),
                      "B_after_B": measure_matrix(on_ab, E, b_test, S, W), "consolidations": 0}
    return out


def table(runs: list[dict], every: int) -> str:
    def med(get) -> str:
        v = np.array([get(r) for r in runs])
        return f"{np.median(v):.3f} ({v.min():.3f} to {v.max():.3f})" if len(v) > 1 else f"{v[0]:.3f}"

    lines = ["| adapter | AUC on A after A | AUC on A after B | forgetting on A (AUC drop) | AUC on A after B "
             "minus micro's (same seed) | AUC on B after B | accuracy on A after B | consolidations |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in [*variants(every), REFERENCE]:
        lines.append(
            f"| {name} | {med(lambda r: r[name]['A_after_A']['auc'])} | {med(lambda r: r[name]['A_after_B']['auc'])} "
            f"| {med(lambda r: r[name]['A_after_A']['auc'] - r[name]['A_after_B']['auc'])} "
            f"| {med(lambda r: r[name]['A_after_B']['auc'] - r['micro']['A_after_B']['auc'])} "
            f"| {med(lambda r: r[name]['B_after_B']['auc'])} | {med(lambda r: r[name]['A_after_B']['accuracy'])} "
            f"| {int(np.median([r[name]['consolidations'] for r in runs]))} |")
    return "\n".join(lines)


def render(path: str) -> str:
    """The table of a results file (``--render``)."""
    saved = json.loads(open(path).read())
    return table(saved["runs"], saved["settings"]["every"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--every", type=int, default=64, help="feedback events between consolidations")
    ap.add_argument("--lr-min", type=float, default=1e-3,
                    help="the micro adapter's learning-rate floor (KG_LEARN_LR_MIN; its default 0.001)")
    ap.add_argument("--embedding", default="tfidf", choices=["tfidf", "minilm"])
    ap.add_argument("--render", metavar="JSON", help="print the table of a results file and exit")
    args = ap.parse_args()
    if args.render:
        print(render(args.render))
        return
    data = _embed.load_mmlu()
    E = _embed.embeddings(args.embedding, data)
    runs = []
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        runs.append(run_seed(data, E, seed, args.every, args.lr_min))
        r = runs[-1]
        print(f"seed {seed}: forgetting on A (AUC drop) micro {r['micro']['A_after_A']['auc'] - r['micro']['A_after_B']['auc']:+.4f}, "
              f"base+micro {r['base+micro']['A_after_A']['auc'] - r['base+micro']['A_after_B']['auc']:+.4f}", flush=True)
    subjects = np.array(data.subjects)
    a_all = np.isin(subjects, sorted(STEM))
    _embed.RESULTS.mkdir(parents=True, exist_ok=True)
    path = _embed.RESULTS / f"adapter_forgetting_lrmin{args.lr_min:g}.json"
    path.write_text(json.dumps({"settings": vars(args), "runs": runs}, indent=1))
    print(f"\nA = STEM, B = humanities + social sciences; {args.embedding} embeddings; consolidation every "
          f"{args.every} feedback events; lr_min {args.lr_min:g}; median (range) over {len(runs)} seeds; {time.perf_counter() - t0:.0f} s\n")
    print(table(runs, args.every))
    print(f"\nAlways GPT-4 on A: accuracy {data.strong[a_all].mean():.3f}. Results: {path}")


if __name__ == "__main__":
    main()
