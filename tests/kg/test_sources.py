"""Tests for kg.sources: the bulk-ingest readers, on tmp files and on the real datasets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kg.errors import InvalidInput
from kg.sources import (
    Row,
    Skip,
    count_skips,
    parse_kg_date,
    read_delimited,
    read_jsonl,
    read_temporal_kg,
    skip_report,
)
from kg.timeparse import from_ms, to_ms

DATA = Path(__file__).resolve().parents[2] / "data" / "temporal-kg"
YAGO = DATA / "yago11k"
WIKIDATA = DATA / "wikidata12k"
SPLITS = ("train", "valid", "test")

INJECTION = [
    '"}) DETACH DELETE n //',
    "`) MATCH (m) DETACH DELETE m //",
    "a`b``c",
    "{x: 1}",
    "MATCH (n) RETURN n; DROP CONSTRAINT x",
    "Zoë 北京 🚀 \u202e",
    "$param",
    "\\u0000 \\n",
]


def rows(items: list[Row | Skip]) -> list[Row]:
    return [item for item in items if isinstance(item, Row)]


def skips(items: list[Row | Skip]) -> list[Skip]:
    return [item for item in items if isinstance(item, Skip)]


# --- JSON Lines ------------------------------------------------------------------


def test_jsonl_rows_skips_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "edges.jsonl"
    path.write_bytes(
        b'{"id": "e1", "src": "a", "dst": "b", "valid_at": "2019-01-01"}\n'
        b"\n"
        b"   \n"
        b"{not json\n"
        b"[1, 2]\n"
        b'"a string"\n'
        b"42\n"
        b'{"id": "e2", "weight": NaN}\n'
        b'{"id": "\xff\xfe"}\n'
        b'{"id": "e3", "valid_at": 1551398400000}\r\n'
        b'{"id": "e4"}'
    )
    items = list(read_jsonl(path))
    assert [(type(item).__name__, item.line) for item in items] == [
        ("Row", 1),
        ("Skip", 4),
        ("Skip", 5),
        ("Skip", 6),
        ("Skip", 7),
        ("Skip", 8),
        ("Skip", 9),
        ("Row", 10),
        ("Row", 11),
    ]
    assert [skip.reason for skip in skips(items)] == [
        "invalid JSON",
        "not an object",
        "not an object",
        "not an object",
        "invalid JSON",
        "invalid UTF-8",
    ]
    assert rows(items)[1].record == {"id": "e3", "valid_at": 1551398400000}
    assert all(item.source == str(path) for item in items)


def test_jsonl_passes_injection_and_unicode_unchanged(tmp_path: Path) -> None:
    records = [
        {"id": text, "src": text, "dst": text, "relation": text, "attributes": {text: [text]}}
        for text in INJECTION
    ]
    path = tmp_path / "edges.jsonl"
    path.write_text("\ufeff" + "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", "utf-8")
    assert [row.record for row in rows(list(read_jsonl(path)))] == records


# --- CSV / TSV -----------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_csv_cells_and_types(tmp_path: Path) -> None:
    path = write(
        tmp_path / "edges.csv",
        "id,src,dst,relation,valid_at,invalid_at,weight,attributes,created_at\r\n"
        'e1,a,b,works_at,2019-01-01,,0.5,"{""k"": [1, ""v""]}",1551398400000\r\n'
        "e2,a,b,,2019,-62167219200000,,,\r\n"
        "\r\n"
        "e3,a,b,,1234,,1e3,,\r\n",
    )
    items = list(read_delimited(path))
    assert items == [
        Row(
            str(path),
            2,
            {
                "id": "e1",
                "src": "a",
                "dst": "b",
                "relation": "works_at",
                "valid_at": "2019-01-01",
                "weight": 0.5,
                "attributes": {"k": [1, "v"]},
                "created_at": 1551398400000,
            },
        ),
        Row(str(path), 3, {"id": "e2", "src": "a", "dst": "b", "valid_at": "2019", "invalid_at": -62167219200000}),
        Row(str(path), 5, {"id": "e3", "src": "a", "dst": "b", "valid_at": "1234", "weight": 1000.0}),
    ]


def test_csv_bad_rows_become_skips(tmp_path: Path) -> None:
    big = "x" * 200_000
    path = write(
        tmp_path / "edges.csv",
        "id,src,dst,valid_at,weight,attributes\n"
        "e1,a,b,2019\n"
        "e2,a,b,2019,heavy,\n"
        "e3,a,b,2019,inf,\n"
        "e4,a,b,2019,nan,\n"
        'e5,a,b,2019,,"[1, 2]"\n'
        "e6,a,b,2019,,{nope\n"
        'e7,a,b,2019,,"{""x"": NaN}"\n'
        f'e8,a,b,2019,,"{big}"\n'
        "e9,a,b,2019,,,extra\n"
        "e10,a,b,2019,2,\n",
    )
    items = list(read_delimited(path))
    assert [(item.line, getattr(item, "reason", "row")) for item in items] == [
        (2, "expected 6 columns, got 4"),
        (3, "weight is not a number"),
        (4, "weight is not finite"),
        (5, "weight is not finite"),
        (6, "attributes is not a JSON object"),
        (7, "attributes is not valid JSON"),
        (8, "attributes is not valid JSON"),
        (9, "unreadable CSV row"),
        (10, "expected 6 columns, got 7"),
        (11, "row"),
    ]


def test_csv_invalid_utf8_costs_one_row(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_bytes(b"id,src,dst,valid_at\ne1,\xff,b,2019\ne2,a,b,2019\n")
    items = list(read_delimited(path))
    assert items[0] == Skip(str(path), 2, "invalid UTF-8")
    assert items[1].record["id"] == "e2"


def test_csv_quotes_newlines_unicode_and_injection_pass_unchanged(tmp_path: Path) -> None:
    import csv

    path = tmp_path / "edges.csv"
    values = [*INJECTION, 'multi\nline "quoted", text']
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "src", "dst", "relation", "valid_at", "attributes"])
        for text in values:
            writer.writerow([text, text, text, text, "2019-01-01", json.dumps({text: text}, ensure_ascii=False)])
    got = rows(list(read_delimited(path)))
    assert [row.record for row in got] == [
        {"id": t, "src": t, "dst": t, "relation": t, "valid_at": "2019-01-01", "attributes": {t: t}} for t in values
    ]
    # a quoted field spanning lines: the row is reported at the line where it starts
    assert got[-1].line == len(values) + 1


def test_tsv_by_extension_and_explicit_delimiter(tmp_path: Path) -> None:
    text = "id\tsrc\tdst\tvalid_at\nE,1\t`a`\tb,c\t2019-01-01T00:00Z\n"
    expected = {"id": "E,1", "src": "`a`", "dst": "b,c", "valid_at": "2019-01-01T00:00Z"}
    assert rows(list(read_delimited(write(tmp_path / "edges.tsv", text))))[0].record == expected
    assert rows(list(read_delimited(write(tmp_path / "edges.txt", text), delimiter="\t")))[0].record == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "header: missing header row"),
        ("id,src,dst,valid_from", "header: unknown column 'valid_from'"),
        ("id,src,dst,valid_at,id", "header: column id appears twice"),
        ("id,src,valid_at", "header: missing column dst"),
    ],
)
def test_csv_header_problems_raise_naming_the_column(tmp_path: Path, header: str, message: str) -> None:
    path = write(tmp_path / "edges.csv", header + ("\n" if header else ""))
    with pytest.raises(InvalidInput) as info:
        list(read_delimited(path))
    assert str(info.value).startswith(message)


def test_unknown_extension_needs_a_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "edges.dat", "id,src,dst,valid_at\n")
    with pytest.raises(InvalidInput, match="^delimiter: "):
        list(read_delimited(path))


# --- HyTE dates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "start", "end"),
    [
        ("1952-##-##", "1952-01-01", "1953-01-01"),
        ("2019-07-##", "2019-07-01", "2019-08-01"),
        ("2019-12-##", "2019-12-01", "2020-01-01"),
        ("1925-04-23", "1925-04-23", "1925-04-24"),
        ("2000-02-29", "2000-02-29", "2000-03-01"),
        ("1999-12-31", "1999-12-31", "2000-01-01"),
        ("195#-##-##", "1950-01-01", "1960-01-01"),
        ("19##-##-##", "1900-01-01", "2000-01-01"),
        ("98-##-##", "0098-01-01", "0099-01-01"),
        ("360-##-##", "0360-01-01", "0361-01-01"),
        ("-431-##-##", "-0431-01-01", "-0430-01-01"),
        ("-1-##-##", "-0001-01-01", "0000-01-01"),
    ],
)
def test_kg_date_periods(raw: str, start: str, end: str) -> None:
    assert parse_kg_date(raw, end=False) == to_ms(start, "t")
    assert parse_kg_date(raw, end=True) == to_ms(end, "t")


@pytest.mark.parametrize(
    "raw",
    [
        "307-13047-09",
        "1963-64-65",
        "1963-00-##",
        "1963-02-30",
        "1900-02-29",
        "1963-##-05",
        "-43#-##-##",
        "195#-03-##",
        "1#5#-##-##",
        "####-05-##",
        "-####-##-##",
        "1963",
        "1963-1-1",
        "",
    ],
)
def test_kg_date_malformed(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_kg_date(raw, end=False)


def test_kg_date_unknown_is_none() -> None:
    assert parse_kg_date("####-##-##", end=False) is None
    assert parse_kg_date("####-##-##", end=True) is None


# --- YAGO11k / Wikidata12k on a small tmp copy ---------------------------------------------


def test_temporal_kg_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "entity2id.txt").write_text("<A_(x)>\t0\t1900-##-##\t####-##-##\n<Bé>\t1\t####-##-##\t####-##-##\n")
    (tmp_path / "relation2id.txt").write_text("<owns>\t0\n<created>\t1")
    (tmp_path / "train.txt").write_text(
        "0\t0\t1\t1952-##-##\t1964-##-##\n"
        "0\t0\t1\t1952-##-##\n"
        "\n"
        "0\t0\t7\t1952-##-##\t1964-##-##\n"
        "7\t0\t1\t1952-##-##\t1964-##-##\n"
        "0\t9\t1\t1952-##-##\t1964-##-##\n"
        "0\t1\t1\t1964-##-##\t1952-##-##\n"
        "0\t1\t1\t####-##-##\t1952-##-##\n"
        "0\t1\t1\t1952-##-##\t1952-02-30\n"
        "0\t1\t1\t1952-##-##\t1951-12-31\n"
        "0\t1\t1\t1952-03-01\t1952-03-01\n"
    )
    items = list(read_temporal_kg(tmp_path, splits=("train",)))
    assert [getattr(item, "reason", "row") for item in items] == [
        "row",
        "expected 5 columns, got 4",
        "expected 5 columns, got 1",
        "unknown object id",
        "unknown subject id",
        "unknown relation id",
        "inverted interval",
        "unknown start date (valid_at is required)",
        "malformed end date '1952-02-30'",
        "inverted interval",
        "row",
    ]
    first = items[0].record
    assert first["src"] == "A_(x)" and first["dst"] == "Bé" and first["relation"] == "owns"
    assert first["id"] == "yago11k/train/1"
    assert "relation_label" not in first["attributes"]
    last = items[-1].record
    assert (from_ms(last["valid_at"]), from_ms(last["invalid_at"])) == ("1952-03-01T00:00:00Z", "1952-03-02T00:00:00Z")


def test_temporal_kg_refuses_unknown_layout_and_split(tmp_path: Path) -> None:
    (tmp_path / "entity2id.txt").write_text("a\t0\tx\n")
    (tmp_path / "relation2id.txt").write_text("r\t0\n")
    with pytest.raises(InvalidInput, match="^dataset_dir: "):
        list(read_temporal_kg(tmp_path))
    (tmp_path / "entity2id.txt").write_text("Q1\t0\n")
    with pytest.raises(InvalidInput, match="^splits: "):
        list(read_temporal_kg(tmp_path, splits=("train",)))


# --- the real files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def yago() -> list[Row | Skip]:
    return list(read_temporal_kg(YAGO))


@pytest.fixture(scope="module")
def wikidata() -> list[Row | Skip]:
    return list(read_temporal_kg(WIKIDATA))


def line_count(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


@pytest.mark.parametrize("dataset", [YAGO, WIKIDATA], ids=["yago11k", "wikidata12k"])
def test_every_line_is_a_row_or_a_skip(dataset: Path) -> None:
    for split in SPLITS:
        items = list(read_temporal_kg(dataset, splits=(split,)))
        assert len(items) == line_count(dataset / f"{split}.txt")
        assert [item.line for item in items] == list(range(1, len(items) + 1))


def test_yago_skips_by_reason(yago: list[Row | Skip]) -> None:
    assert len(yago) == 20_509
    assert count_skips(yago) == Counter(
        {
            "inverted interval": 70,
            "malformed start date '307-13047-09'": 1,
            "malformed start date '1963-64-65'": 1,
        }
    )


def test_wikidata_skips_by_reason(wikidata: list[Row | Skip]) -> None:
    assert len(wikidata) == 40_621
    assert count_skips(wikidata) == Counter(
        {"unknown start date (valid_at is required)": 1_405, "inverted interval": 10}
    )


def test_known_malformed_yago_line(yago: list[Row | Skip]) -> None:
    (item,) = [i for i in yago if i.source == str(YAGO / "train.txt") and i.line == 7436]
    assert item == Skip(str(YAGO / "train.txt"), 7436, "malformed start date '307-13047-09'")


def test_bc_fact_is_negative(yago: list[Row | Skip]) -> None:
    (row,) = [r for r in rows(yago) if r.record["attributes"]["start_raw"] == "-431-##-##"]
    assert row.record["valid_at"] == to_ms("-0431-01-01", "t") < 0
    assert row.record["invalid_at"] is None
    assert row.record["src"] == "Euripides"


def test_exclusive_end_rule(yago: list[Row | Skip]) -> None:
    by_id = {r.record["id"]: r.record for r in rows(yago)}
    first = by_id["yago11k/train/1"]
    assert (first["src"], first["relation"], first["dst"]) == ("Government_of_Canada", "owns", "RCAF_Station_Grostenquin")
    assert (first["valid_at"], first["invalid_at"]) == (to_ms("1952", "t"), to_ms("1965", "t"))
    (married,) = [r for r in by_id.values() if r["src"] == "Frances_Howard_(actress)" and r["relation"] == "isMarriedTo"]
    assert married["dst"] == "Samuel_Goldwyn"
    assert (married["valid_at"], married["invalid_at"]) == (to_ms("1925-04-23", "t"), to_ms("1974-02-01", "t"))
    born = [r for r in by_id.values() if r["relation"] == "wasBornIn"]
    assert born and all(r["invalid_at"] > r["valid_at"] for r in born)
    assert any(r["invalid_at"] - r["valid_at"] == 86_400_000 for r in born)  # day-precision point facts


def test_yago_names_unbracketed_and_unicode(yago: list[Row | Skip]) -> None:
    names = {r.record["src"] for r in rows(yago)} | {r.record["dst"] for r in rows(yago)}
    assert "Szymon_Bogumił_Zug" in names
    assert not any(name.startswith("<") or name.endswith(">") for name in names)
    assert {r.record["relation"] for r in rows(yago)} == {
        "wasBornIn", "diedIn", "worksAt", "playsFor", "hasWonPrize",
        "isMarriedTo", "owns", "graduatedFrom", "isAffiliatedTo", "created",
    }  # fmt: skip


def test_wikidata_ids_and_labels(wikidata: list[Row | Skip]) -> None:
    first = rows(wikidata)[0].record
    assert first == {
        "id": "wikidata12k/train/1",
        "src": "Q382767",
        "dst": "Q6578215",
        "relation": "P39",
        "valid_at": to_ms("1926", "t"),
        "invalid_at": to_ms("1930", "t"),
        "attributes": {
            "dataset": "wikidata12k",
            "split": "train",
            "start_raw": "1926-##-##",
            "end_raw": "1929-##-##",
            "relation_label": "position held",
        },
    }
    labels = {r.record["relation"]: r.record["attributes"]["relation_label"] for r in rows(wikidata)}
    assert len(labels) == 24
    assert labels["P166"] == "award received"


@pytest.mark.parametrize("dataset", [YAGO, WIKIDATA], ids=["yago11k", "wikidata12k"])
def test_ids_unique_and_stable(dataset: Path) -> None:
    first = [(r.record["id"], r.record["valid_at"]) for r in rows(list(read_temporal_kg(dataset)))]
    second = [(r.record["id"], r.record["valid_at"]) for r in rows(list(read_temporal_kg(dataset)))]
    assert first == second
    assert len({id_ for id_, _ in first}) == len(first)


def test_layout_detected_by_files_not_folder_name(tmp_path: Path) -> None:
    copy = tmp_path / "renamed"
    copy.mkdir()
    for name in ("entity2id.txt", "relation2id.txt", "valid.txt"):
        (copy / name).symlink_to(YAGO / name)
    items = list(read_temporal_kg(copy, splits=("valid",)))
    assert rows(items)[0].record["id"] == "yago11k/valid/1"


def test_skip_report_groups_by_reason(wikidata: list[Row | Skip]) -> None:
    report = skip_report(skips(wikidata), examples=2)
    assert len(report) == 2
    assert report[0].startswith("unknown start date (valid_at is required): 1405 (")
    assert report[0].endswith(", and 1403 more)")
