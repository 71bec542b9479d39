"""The project reads nothing outside its own tree: a fresh clone has no ``shared/`` beside it."""

import re
from pathlib import Path

from service.cli import DEFAULT_DATA

ROOT = Path(__file__).resolve().parents[2]
# a path that climbs out of the repository to the team's reference copies beside it (the parent
# folder's shared directory, spelt as a relative path or joined with "/")
OUTSIDE = re.compile(r"""\.\./shared|["']shared["']\s*/|/\s*["']shared["']|REPO\.parent|ROOT\.parent""")


def test_the_demo_data_ships_inside_the_repository():
    assert DEFAULT_DATA.resolve().is_relative_to(ROOT)
    for dataset in ("yago11k", "wikidata12k"):
        assert (DEFAULT_DATA / dataset / "train.txt").is_file()
    readme = (DEFAULT_DATA / "README.md").read_text()
    assert "YAGO" in readme and "HyTE" in readme and "License" in readme
    routing = ROOT / "data" / "routing"
    assert len(list((routing / "mmlu").glob("mmlu_*.csv"))) == 57
    assert "Apache-2.0" in (routing / "README.md").read_text()


def test_no_source_reads_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}:{number}"
             for folder in ("kg", "learn", "workers", "bench", "tests", "tools")
             for path in sorted((ROOT / folder).rglob("*.py")) if "node_modules" not in path.parts
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if OUTSIDE.search(line) and path.name != "test_repo_tree.py"]
    assert found == []
