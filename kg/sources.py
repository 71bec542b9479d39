"""Readers for bulk ingest: files in, edge records out, nothing written anywhere.

A reader yields one item per data line: a ``Row`` holding an edge record (a
plain dict for the edge model to validate) or a ``Skip`` saying why that line
cannot become an edge.  One bad line never stops a reader, so ingest can load
everything else and report the skipped lines grouped by reason.  Problems with
a whole file (missing header, unknown column, unknown dataset layout) raise
``InvalidInput`` before any row is yielded.

JSON Lines (``read_jsonl``)
    One JSON object per line, passed through as is.  Blank lines are ignored.

CSV / TSV (``read_delimited``)
    A header row naming columns from ``COLUMNS``; ``id``, ``src``, ``dst`` and
    ``valid_at`` are required.  An unknown column is an error at the header
    (a typo such as ``valid_from`` must not silently drop every time).  Empty
    cells become absent keys, ``weight`` becomes a float, ``attributes`` is a
    JSON object.  Time cells stay ISO-8601 strings, except an optionally
    signed integer of five or more digits, which is epoch milliseconds
    (``2019`` is read as the year, not as 2019 ms).

YAGO11k / Wikidata12k (``read_temporal_kg``)
    The HyTE files in ``data/temporal-kg``; their dates turn into a
    half-open interval ``[valid_at, invalid_at)`` in epoch ms (proleptic
    Gregorian, UTC), ``#`` standing for an unknown digit:

    - start: the first instant of the period it names: ``1952-##-##`` ->
      1952-01-01, ``2019-07-##`` -> 2019-07-01, ``195#-##-##`` (decade) ->
      1950-01-01, ``19##-##-##`` (century) -> 1900-01-01.
    - end: the exclusive end of the period it names, because a fact that
      ended "in 1964" still held during 1964: ``1964-##-##`` -> 1965-01-01,
      ``2019-07-##`` -> 2019-08-01, ``1925-04-23`` -> 1925-04-24.  So a
      point-like fact (born 1952-1952) becomes [1952-01-01, 1953-01-01).
    - ``####-##-##`` as end: open interval (``invalid_at`` None).  As start:
      skipped, "unknown start date (valid_at is required)".
    - years are not zero-padded (``98-##-##`` is year 98); a leading minus is
      a BC year taken as astronomical numbering as written (``-431`` is year
      -431, i.e. 432 BC), as ISO-8601 does.  YAGO probably meant 431 BC
      (Euripides' Medea), one year later; the number is kept as written
      rather than guessing the source's convention.
    - anything else (``307-13047-09``, a day without a month, a partial
      negative year, day 31 in a 30-day month) is skipped as "malformed
      start date '…'" or "malformed end date '…'".
    - start not before end once converted: skipped, "inverted interval".
    - a line without 5 tab-separated columns, or with an entity or relation
      id missing from entity2id / relation2id: skipped with that reason.

    Edge ids are ``<dataset>/<split>/<line>`` (e.g. ``yago11k/train/7436``),
    stable across runs and machines, so re-ingesting is idempotent.

>>> item = Row("edges.jsonl", 1, {"id": "e1"})
>>> item.record["id"], isinstance(item, Row)
('e1', True)
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from kg.errors import InvalidInput
from kg.timeparse import MS_PER_DAY, days_from_civil, days_in_month, is_epoch_ms_text

__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "Row",
    "Skip",
    "count_skips",
    "parse_kg_date",
    "read_delimited",
    "read_jsonl",
    "read_temporal_kg",
    "skip_report",
]

COLUMNS = ("id", "src", "dst", "relation", "valid_at", "invalid_at", "weight", "attributes", "created_at")
REQUIRED_COLUMNS = ("id", "src", "dst", "valid_at")
_TIME_COLUMNS = ("valid_at", "invalid_at", "created_at")
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}

# Wikidata's own English label where TILP's label file differs from it (see the data README).
_WIKIDATA_LABEL_FIXES = {"P166": "award received"}


@dataclass(slots=True)
class Row:
    """One edge record read from ``source`` at 1-based ``line``; a value, never changed.

    Built once per line, so built cheaply: not frozen (four times slower to build, and
    holding a dict it was never hashable) and with slots (one object less per line).
    """

    source: str
    line: int
    record: dict[str, Any]


@dataclass(frozen=True)
class Skip:
    """A line of ``source`` that cannot become an edge, and why."""

    source: str
    line: int
    reason: str


Item = Row | Skip


# --- JSON Lines -------------------------------------------------------------


def read_jsonl(path: str | Path) -> Iterator[Item]:
    """Yield one Row per JSON object line; bad lines become Skips.

    Lines are decoded one by one so a stray invalid byte costs one line, not
    the file.  ``NaN`` and ``Infinity`` are not JSON and are refused.
    """
    source = str(path)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                yield Skip(source, number, "invalid UTF-8")
                continue
            if not text.strip():
                continue
            try:
                value = _decode_json(text)
            except (ValueError, RecursionError):
                yield Skip(source, number, "invalid JSON")
                continue
            if isinstance(value, dict):
                yield Row(source, number, value)
            else:
                yield Skip(source, number, "not an object")


def _refuse_constant(name: str) -> None:
    raise ValueError("non-finite number")


# Made once: json.loads with an option builds a decoder per call.  Its BOM check is not needed:
# a line starting with U+FEFF fails to decode either way, as invalid JSON.
_decode_json = json.JSONDecoder(parse_constant=_refuse_constant).decode


# --- CSV / TSV --------------------------------------------------------------


def read_delimited(path: str | Path, delimiter: str | None = None) -> Iterator[Item]:
    """Yield Rows from a CSV or TSV file with a header row (see the module docstring).

    The delimiter comes from the extension (``.csv`` / ``.tsv`` / ``.tab``)
    unless given.  Raises InvalidInput for a file-level problem.
    """
    source = str(path)
    delimiter = delimiter or _DELIMITERS.get(Path(path).suffix.lower())
    if delimiter is None:
        raise InvalidInput("delimiter", "cannot tell CSV from TSV by the file extension; pass it")
    # surrogateescape keeps invalid bytes inside their row, where they become a Skip
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = _read_header(reader)
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error:
                yield Skip(source, start, "unreadable CSV row")
                continue
            if not cells:
                continue
            yield _delimited_item(source, start, header, cells)


def _read_header(reader: Iterator[list[str]]) -> list[str]:
    try:
        names = [name.strip() for name in next(reader)]
    except StopIteration:
        raise InvalidInput("header", "missing header row") from None
    except csv.Error:
        raise InvalidInput("header", "unreadable header row") from None
    for position, name in enumerate(names, start=1):
        if name not in COLUMNS:
            raise InvalidInput("header", f"unknown column {name[:40]!r}; allowed: {', '.join(COLUMNS)}")
        if names.index(name) != position - 1:
            raise InvalidInput("header", f"column {name} appears twice")
    for name in REQUIRED_COLUMNS:
        if name not in names:
            raise InvalidInput("header", f"missing column {name}")
    return names


def _delimited_item(source: str, line: int, header: list[str], cells: list[str]) -> Item:
    if len(cells) != len(header):
        return Skip(source, line, f"expected {len(header)} columns, got {len(cells)}")
    if any(map(_BAD_BYTE.search, cells)):
        return Skip(source, line, "invalid UTF-8")
    record: dict[str, Any] = {}
    for name, cell in zip(header, cells):
        if cell == "":
            continue
        if name == "weight":
            try:
                weight = float(cell)
            except ValueError:
                return Skip(source, line, "weight is not a number")
            if not math.isfinite(weight):
                return Skip(source, line, "weight is not finite")
            record[name] = weight
        elif name == "attributes":
            try:
                attributes = _decode_json(cell)
            except (ValueError, RecursionError):
                return Skip(source, line, "attributes is not valid JSON")
            if not isinstance(attributes, dict):
                return Skip(source, line, "attributes is not a JSON object")
            record[name] = attributes
        elif name in _TIME_COLUMNS and is_epoch_ms_text(cell):
            record[name] = int(cell)
        else:
            record[name] = cell
    return Row(source, line, record)


_BAD_BYTE = re.compile("[\udc80-\udcff]")  # how surrogateescape decodes an invalid byte


# --- YAGO11k / Wikidata12k ----------------------------------------------------

_KG_DATE = re.compile(r"(-?)([0-9]+#*|#+)-([0-9]{2}|##)-([0-9]{2}|##)")


def parse_kg_date(raw: str, *, end: bool) -> int | None:
    """Epoch ms of a HyTE date: first instant of its period, or (``end=True``) its exclusive end.

    Returns None for the fully unknown ``####-##-##``; raises ValueError when malformed.

    >>> from kg.timeparse import from_ms
    >>> from_ms(parse_kg_date("1964-##-##", end=False)), from_ms(parse_kg_date("1964-##-##", end=True))
    ('1964-01-01T00:00:00Z', '1965-01-01T00:00:00Z')
    >>> from_ms(parse_kg_date("19##-##-##", end=True)), from_ms(parse_kg_date("2019-12-##", end=True))
    ('2000-01-01T00:00:00Z', '2020-01-01T00:00:00Z')
    >>> parse_kg_date("####-##-##", end=True) is None
    True
    """
    match = _KG_DATE.fullmatch(raw)
    if match is None:
        raise ValueError("malformed date")
    sign, year_text, month_text, day_text = match.groups()
    if year_text.startswith("#"):
        if sign or month_text != "##" or day_text != "##":
            raise ValueError("malformed date")
        return None
    unknown_digits = year_text.count("#")
    if unknown_digits and (sign or month_text != "##"):
        raise ValueError("malformed date")  # a partial BC year or a month in a partial year
    if month_text == "##" and day_text != "##":
        raise ValueError("malformed date")
    scale = 10**unknown_digits
    year = int(sign + year_text.rstrip("#")) * scale
    if month_text == "##":
        return _civil_ms(year + scale, 1, 1) if end else _civil_ms(year, 1, 1)
    month = int(month_text)
    if not 1 <= month <= 12:
        raise ValueError("malformed date")
    if day_text == "##":
        if not end:
            return _civil_ms(year, month, 1)
        return _civil_ms(year + 1, 1, 1) if month == 12 else _civil_ms(year, month + 1, 1)
    day = int(day_text)
    if not 1 <= day <= days_in_month(year, month):
        raise ValueError("malformed date")
    return _civil_ms(year, month, day) + (MS_PER_DAY if end else 0)


def _civil_ms(year: int, month: int, day: int) -> int:
    return days_from_civil(year, month, day) * MS_PER_DAY


@lru_cache(maxsize=16_384)
def _kg_date(raw: str, end: bool) -> int | None:
    """``parse_kg_date``, remembered: datasets repeat their dates (Wikidata12k has 619
    distinct in 81,000).  A malformed date raises each time (errors are not cached)."""
    return parse_kg_date(raw, end=end)


@dataclass(frozen=True)
class _KgLayout:
    dataset: str
    entities: dict[str, str]
    relations: dict[str, str]
    labels: dict[str, str]


def read_temporal_kg(
    dataset_dir: str | Path, splits: Iterable[str] = ("train", "valid", "test")
) -> Iterator[Item]:
    """Yield every fact line of YAGO11k or Wikidata12k as a Row, or a Skip with its reason.

    The dataset is recognised by its files (YAGO's entity2id.txt has four
    columns, Wikidata's two), not by the folder name.
    """
    directory = Path(dataset_dir)
    layout = _load_layout(directory)
    if isinstance(splits, str):
        splits = (splits,)
    for split in splits:
        path = directory / f"{split}.txt"
        if not path.is_file():
            raise InvalidInput("splits", f"no file for split {split!r}")
        source = str(path)
        # surrogateescape: a stray byte lands in an id, which is then unknown and skipped
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
            for number, text in enumerate(handle, start=1):
                yield _kg_item(layout, split, source, number, text.rstrip("\r\n"))


def _load_layout(directory: Path) -> _KgLayout:
    entity_rows = _tab_rows(directory / "entity2id.txt")
    relation_rows = _tab_rows(directory / "relation2id.txt")
    widths = {len(row) for row in entity_rows}
    if widths == {4}:
        entities = {row[1]: _unbracket(row[0]) for row in entity_rows}
        relations = {row[1]: _unbracket(row[0]) for row in relation_rows if len(row) >= 2}
        return _KgLayout("yago11k", entities, relations, {})
    if widths == {2}:
        entities = {row[1]: row[0] for row in entity_rows}
        relations = {row[1]: row[0] for row in relation_rows if len(row) >= 2}
        label_rows = _tab_rows(directory / "extra-TILP" / "relation2id.txt", optional=True)
        labels = {row[0]: _WIKIDATA_LABEL_FIXES.get(row[0], row[2]) for row in label_rows if len(row) == 3}
        return _KgLayout("wikidata12k", entities, relations, labels)
    raise InvalidInput("dataset_dir", "entity2id.txt is neither the YAGO11k nor the Wikidata12k layout")


def _unbracket(name: str) -> str:
    return name.removeprefix("<").removesuffix(">")


def _tab_rows(path: Path, optional: bool = False) -> list[list[str]]:
    if optional and not path.is_file():
        return []
    if not path.is_file():
        raise InvalidInput("dataset_dir", f"missing {path.name}")
    with open(path, encoding="utf-8", newline="") as handle:
        return [line.rstrip("\r\n").split("\t") for line in handle if line.strip()]


def _kg_item(layout: _KgLayout, split: str, source: str, number: int, text: str) -> Item:
    cells = text.split("\t")
    if len(cells) != 5:
        return Skip(source, number, f"expected 5 columns, got {len(cells)}")
    subject_id, relation_id, object_id, start_raw, end_raw = cells
    src = layout.entities.get(subject_id)
    dst = layout.entities.get(object_id)
    relation = layout.relations.get(relation_id)
    if src is None:
        return Skip(source, number, "unknown subject id")
    if dst is None:
        return Skip(source, number, "unknown object id")
    if relation is None:
        return Skip(source, number, "unknown relation id")
    try:
        valid_at = _kg_date(start_raw, False)
    except ValueError:
        return Skip(source, number, f"malformed start date {start_raw!r}")
    if valid_at is None:
        return Skip(source, number, "unknown start date (valid_at is required)")
    try:
        invalid_at = _kg_date(end_raw, True)
    except ValueError:
        return Skip(source, number, f"malformed end date {end_raw!r}")
    if invalid_at is not None and valid_at >= invalid_at:
        return Skip(source, number, "inverted interval")
    attributes = {"dataset": layout.dataset, "split": split, "start_raw": start_raw, "end_raw": end_raw}
    if relation in layout.labels:
        attributes["relation_label"] = layout.labels[relation]
    record = {
        "id": f"{layout.dataset}/{split}/{number}",
        "src": src,
        "dst": dst,
        "relation": relation,
        "valid_at": valid_at,
        "invalid_at": invalid_at,
        "attributes": attributes,
    }
    return Row(source, number, record)


# --- Reporting ------------------------------------------------------------------


def count_skips(items: Iterable[Item]) -> Counter[str]:
    """Number of skipped lines per reason (Rows are ignored).

    >>> count_skips([Skip("f", 1, "invalid JSON"), Row("f", 2, {}), Skip("f", 3, "invalid JSON")])
    Counter({'invalid JSON': 2})
    """
    return Counter(item.reason for item in items if isinstance(item, Skip))


def skip_report(skips: Iterable[Skip], examples: int = 3) -> list[str]:
    """Human-readable lines for ingest's summary: each reason, its count, and where.

    >>> print("\\n".join(skip_report([Skip("a.csv", 4, "weight is not a number")])))
    weight is not a number: 1 (a.csv:4)
    """
    grouped: dict[str, list[Skip]] = {}
    for skip in skips:
        grouped.setdefault(skip.reason, []).append(skip)
    lines = []
    for reason, group in sorted(grouped.items(), key=lambda pair: (-len(pair[1]), pair[0])):
        where = ", ".join(f"{skip.source}:{skip.line}" for skip in group[:examples])
        more = f", and {len(group) - examples} more" if len(group) > examples else ""
        lines.append(f"{reason}: {len(group)} ({where}{more})")
    return lines
