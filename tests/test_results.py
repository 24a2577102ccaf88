"""The measured tables in the README and the docs come from committed result files.

A table preceded by ``<!-- results: PATH -->`` must have each of its numbers (every cell
after the first column that holds a digit, bold marks removed) in the file ``PATH``, written
by the reproduction command the page names; so a table cannot drift from its artefact."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^\s*<!-- results: (\S+) -->\s*$")  # a line of its own (not prose quoting it)


def _marked_tables() -> list[tuple[Path, Path, list[list[str]]]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            m = MARKER.search(line)
            if not m:
                continue
            rows = []
            for row in lines[i + 1:]:
                row = row.strip()
                if not row and not rows:
                    continue
                if not row.startswith("|"):
                    break
                cells = [c.strip().replace("**", "") for c in row.strip("|").split("|")]
                if not set("".join(cells)) <= set("-: "):  # skip the |---| line
                    rows.append(cells)
            found.append((page, ROOT / m.group(1), rows[1:]))  # rows[0] is the header
    return found


def test_every_marked_table_is_backed_by_its_result_file():
    tables = _marked_tables()
    assert len(tables) >= 2, "expected the vision tables (README and docs) to be marked"
    for page, source, rows in tables:
        assert source.is_file(), f"{page.name}: {source} is missing"
        text = source.read_text()
        cells = [c for row in rows for c in row[1:] if any(ch.isdigit() for ch in c)]
        assert cells, f"{page.name}: the table marked with {source.name} has no numbers"
        missing = [c for c in cells if c not in text]
        assert not missing, f"{page.name}: numbers not in {source}: {missing[:5]}"


REBUILT = ["adapool-vision-quick", "adapool-vision-tokens64", "adapool-knn-quick", "knn-variants",
           "knn-scaling", "knn-paper-short",
           "knn-paper-gpu-h200",
           "adapool-rl-quick", "adapool-rl-boxworld", "adapool-rl-tag-long", "pool-me-wisely",
           "smollm2-frozen/text-rt", "smollm2-frozen/text-bbc"]


def test_committed_reports_rebuild_from_their_runs_csv(tmp_path):
    """Each committed report's Markdown (tables, tests and verdicts) is what `poolwise report
    --runs` writes from the committed runs.csv today: a verdict in the docs cannot outlive a
    change to the statistics that made it, and runs.csv itself round-trips byte for byte."""
    from poolwise.cli import main

    for name in REBUILT:
        src = ROOT / "docs" / "results" / name
        out = tmp_path / name.replace("/", "-")
        assert main(["report", "--runs", str(src / "runs.csv"), "--out", str(out)]) == 0, name
        for md in sorted(src.glob("*.md")):
            if (out / md.name).exists():
                assert (out / md.name).read_text() == md.read_text(), f"{name}/{md.name} is stale"
        assert (out / "runs.csv").read_bytes() == (src / "runs.csv").read_bytes(), name


PROSE = re.compile(r"^\s*<!-- results-prose: (.+?) -->\s*$")
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:e[-+]?\d+)?|(?<![\w.])\d+e-\d+")


def _backed(value: str, file_numbers: list[str]) -> bool:
    """``value`` (as written in prose) equals some number of the file rounded to the
    prose's own precision (significant digits for a number in e-notation); signs are left
    out (prose says "8.9 points below" where a file has -8.9)."""
    x = abs(float(value))
    file_numbers = [y.lstrip("+-") for y in file_numbers]
    if "e" in value.lower():
        digits = len(value.lower().split("e")[0].replace(".", "").lstrip("+-0"))
        return any(float(f"{float(y):.{max(digits - 1, 0)}e}") == x for y in file_numbers)
    decimals = len(value.split(".")[1])
    return any(round(float(y), decimals) == round(x, decimals) for y in file_numbers)


def _marked_paragraphs() -> list[tuple[Path, list[Path], str]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            m = PROSE.search(line)
            if not m:
                continue
            para = []
            for row in lines[i + 1:]:
                if not row.strip() and para:
                    break
                para.append(row)
            found.append((page, [ROOT / p for p in m.group(1).split()], " ".join(para)))
    return found


def test_every_marked_paragraph_quotes_numbers_its_files_hold():
    """A paragraph after ``<!-- results-prose: PATH ... -->`` may round, but each decimal
    number and p-value in it must be a number of one of the files (rounded to the prose's
    precision): prose cannot quote a figure its artefacts do not hold."""
    paragraphs = _marked_paragraphs()
    assert len(paragraphs) >= 3
    for page, sources, text in paragraphs:
        numbers = [n for s in sources for n in NUMBER.findall(s.read_text())]
        assert numbers, f"{page.name}: {sources} hold no numbers"
        quoted = NUMBER.findall(text)
        assert quoted, f"{page.name}: a marked paragraph quotes no number"
        missing = [q for q in quoted if not _backed(q, numbers)]
        assert not missing, f"{page.name}: {missing} not in {[s.name for s in sources]}: {text[:80]}"


def test_the_prose_check_catches_a_wrong_figure():
    numbers = ["0.0117", "0.00940", "3.4e-07"]
    assert _backed("0.012", numbers) and _backed("3.4e-07", numbers) and _backed("0.0094", numbers)
    assert not _backed("0.013", numbers) and not _backed("3.5e-07", numbers)
