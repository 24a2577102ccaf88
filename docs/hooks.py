"""MkDocs hook: the command-line page shows the parser's own help texts, so it cannot drift."""

from __future__ import annotations

import os

MARKER = "<!-- poolwise-cli-help -->"


def _sections() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width; fix it for the page
    from poolwise.cli import build_parser

    root = build_parser()
    parts = [f"## poolwise\n\n```text\n{root.format_help()}```\n"]
    commands = next(a for a in root._actions if a.dest == "command")
    for name, parser in commands.choices.items():
        parts.append(f"## poolwise {name}\n\n```text\n{parser.format_help()}```\n")
        if name == "reproduce":
            experiments = next(a for a in parser._actions if a.dest == "experiment")
            for exp, sub in experiments.choices.items():
                parts.append(f"### poolwise reproduce {exp}\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    return markdown.replace(MARKER, _sections()) if MARKER in markdown else markdown
