"""Every statement in cypher/ passes Neo4j's own Cypher linter and follows the file convention.

The tests run every statement on Neo4j 5.26 itself (and the store's on ArcadeDB too); the linter
adds a check that needs no server: the files (examples included) parse as Neo4j 5 Cypher.
The linter is the npm package @neo4j-cypher/language-support, driven by tools/cypherlint/lint.mjs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CYPHER = ROOT / "cypher"
LINTER = ROOT / "tools" / "cypherlint"
HEADER = re.compile(r"// (?P<name>[a-z][a-z0-9_]*): \S.*")


def cypher_files() -> list[Path]:
    return sorted(CYPHER.rglob("*.cypher"))


def run_linter(paths: list[Path], *flags: str) -> tuple[int, list[dict]]:
    """Run lint.mjs; fail (never skip) when Node or the pinned package is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; install Node 20+ to lint the Cypher files")
    if not (LINTER / "node_modules" / "@neo4j-cypher" / "language-support").is_dir():
        pytest.fail("the Cypher linter is not installed: run `npm ci --prefix tools/cypherlint`")
    done = subprocess.run(
        [node, str(LINTER / "lint.mjs"), *flags, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode not in (0, 1):
        pytest.fail(f"lint.mjs exited {done.returncode}: {done.stderr.strip()}")
    return done.returncode, json.loads(done.stdout)


def failing(result: dict) -> list[dict]:
    return [d for d in result["diagnostics"] if d["severity"] == "error" or d.get("deprecated")]


def header_problems(paths: list[Path]) -> list[str]:
    """Break-downs of the convention: line 1 is `// <name>: <description>`, name == stem, unique."""
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path in paths:
        first = path.read_text(encoding="utf-8").partition("\n")[0].rstrip("\r")
        match = HEADER.fullmatch(first)
        if match is None:
            problems.append(f"{path}: line 1 must be '// <name>: <one-line description>'")
            continue
        name = match["name"]
        if name != path.stem:
            problems.append(f"{path}: header name {name} differs from the file name")
        if name in seen:
            problems.append(f"{path}: name {name} already used by {seen[name]}")
        seen.setdefault(name, path)
    return problems


@pytest.fixture(scope="module")
def project_lint() -> tuple[int, list[dict]]:
    return run_linter(cypher_files())


def test_every_project_statement_passes_neo4j_linter(project_lint: tuple[int, list[dict]]) -> None:
    code, results = project_lint
    assert [r["file"] for r in results] == [str(p) for p in cypher_files()]
    bad = {r["file"]: failing(r) for r in results if failing(r)}
    assert not bad, json.dumps(bad, indent=2)
    assert code == 0


def test_examples_are_read_only(project_lint: tuple[int, list[dict]]) -> None:
    """User examples run through `kg cypher`, which refuses writes."""
    _, results = project_lint
    examples = CYPHER / "examples"
    writing = {r["file"]: r["writes"] for r in results if Path(r["file"]).is_relative_to(examples) and r["writes"]}
    assert not writing, writing


def test_header_convention() -> None:
    problems = header_problems(cypher_files())
    assert not problems, "\n".join(problems)


def test_linter_can_fail(tmp_path: Path) -> None:
    """The harness reports a broken statement with Neo4j's message, and passes good ones."""
    files = {
        "broken": "// broken: a missing parenthesis\nMATCH (n RETURN n\n",
        "good": "// good: parameterised read\nMATCH (s:Entity {id: $src})-[r:FACT]->(d)\n"
        "WHERE r.valid_from <= $t AND ($t < r.valid_to OR r.valid_to IS NULL)\nRETURN d.id AS id\n",
        "deprecated": "// deprecated: old subquery import\nUNWIND $rows AS row\n"
        "CALL { WITH row MERGE (n:Entity {id: row.id}) }\nRETURN count(*) AS n\n",
        "two": "// two: two statements\nMATCH (n) RETURN n;\nMATCH (m) RETURN m;\n",
    }
    paths = []
    for name, text in files.items():
        (path := tmp_path / f"{name}.cypher").write_text(text, encoding="utf-8")
        paths.append(path)
    code, results = run_linter(paths, "--no-cache")
    by_name = {Path(r["file"]).stem: r for r in results}
    assert code == 1
    (error,) = failing(by_name["broken"])
    assert error["severity"] == "error" and error["line"] == 2
    assert error["message"].startswith("Invalid input 'RETURN'")
    assert by_name["good"]["diagnostics"] == [] and by_name["good"]["writes"] == []
    assert [d.get("deprecated") for d in failing(by_name["deprecated"])] == [True]
    assert by_name["deprecated"]["writes"] == ["MERGE"]
    assert "one statement per file" in failing(by_name["two"])[0]["message"]
    assert header_problems(paths) == []


def test_header_problems_are_found(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    cases = {
        "a/no_header.cypher": "MATCH (n) RETURN n\n",
        "a/wrong_name.cypher": "// other_name: x\nRETURN 1\n",
        "a/dup.cypher": "// dup: first\nRETURN 1\n",
        "dup.cypher": "// dup: second\nRETURN 1\n",
        "Bad.cypher": "// Bad: capitals\nRETURN 1\n",
        "empty_desc.cypher": "// empty_desc:\nRETURN 1\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    problems = header_problems(sorted(tmp_path.rglob("*.cypher")))
    assert len(problems) == 5, problems
    assert any("already used" in p for p in problems)
    assert any("differs from the file name" in p for p in problems)


def test_create_versions_reads_rows_in_row_fields_order() -> None:
    """create_versions takes rows by position; each property must read its own column."""
    from kg.cypher import q
    from kg.temporal import ROW_FIELDS, Version

    merge, create = q("create_versions").split("\nCREATE ")
    assert [ROW_FIELDS[int(i)] for i in re.findall(r"name: row\[(\d+)\]", merge)] == ["src", "dst"]
    pairs = re.findall(r"(\w+): row\[(\d+)\]", create)
    assert sorted({name for name, _ in pairs}) == sorted(ROW_FIELDS)
    assert all(ROW_FIELDS[int(index)] == name for name, index in pairs)
    version = Version("e", 2, "a", "b", "r", 0.5, "{}", 1, 2, 3, 4, 5, "h", "by")
    assert [version.row[ROW_FIELDS.index(f)] for f in ROW_FIELDS[:-1]] == [getattr(version, f) for f in ROW_FIELDS[:-1]]
    assert version.row[ROW_FIELDS.index("tkey")] == version.tkey
