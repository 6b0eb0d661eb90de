"""One table, three renderings (Markdown, LaTeX, HTML) plus its numbers as CSV.

Tables are built once as rows of :class:`Cell` (text + an optional best /
second mark) and rendered by small writers, so bold/underline and escaping
are decided in one place for every format.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from sgp4sr.io import atomic_path

DISPLAY = {
    "sgp4sr": "SGP4SR", "sasrec": "SASRec", "gru4rec": "GRU4Rec", "bert4rec": "BERT4Rec", "fdsa": "FDSA",
    "sasrecf": "SASRecF", "unisrec": "UniSRec", "mmmlp": "MMMLP", "missrec": "MISSRec", "hm4sr": "HM4SR",
    "iisan": "IISAN", "default": "full model", "wo_coo": "w/o COO", "wo_cgc": "w/o CGC", "wo_cip": "w/o CIP",
    "wo_mul": "w/o MUL", "wo_c2c": "w/o C2C", "recall": "Recall", "ndcg": "NDCG", "popularity": "Popularity",
    "oracle": "Oracle",
}


def display(name: str) -> str:
    """People-facing spelling of a model, ablation or metric (``ndcg@10`` -> ``NDCG@10``)."""
    base, sep, k = name.partition("@")
    return DISPLAY.get(base, base) + sep + k


@dataclass
class Cell:
    text: str
    mark: str = ""  # "best", "second" or ""


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def fmt_mean_std(mean: float, std: float | None, decimals: int = 4) -> str:
    """``0.1234 ± 0.0012``; the spread is left out when there is one seed (std NaN)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if std is None or math.isnan(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def marks(values: Sequence[float | None], decimals: int = 4) -> list[str]:
    """'best' / 'second' per value, comparing what the reader sees (rounded), so equal-looking ties share a mark."""
    shown = [None if v is None or math.isnan(v) else round(v, decimals) for v in values]
    distinct = sorted({v for v in shown if v is not None}, reverse=True)
    best = distinct[0] if distinct else None
    second = distinct[1] if len(distinct) > 1 else None
    return ["best" if v is not None and v == best else "second" if v is not None and v == second else ""
            for v in shown]


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"±": r"$\pm$", "—": "--", "−": "$-$", "Δ": r"$\Delta$", "≤": r"$\leq$", "<": r"\textless{}",
                  ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (and the few non-ASCII symbols the tables use)."""
    table = {**_LATEX_SPECIALS, **_LATEX_UNICODE}
    return "".join(table.get(ch, ch) for ch in str(text))


def _md_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "|*_`\\" else ch for ch in str(text))


def to_markdown(table: Table) -> str:
    def cell(c: Cell) -> str:
        text = _md_escape(c.text)
        return f"**{text}**" if c.mark == "best" else f"<u>{text}</u>" if c.mark == "second" else text

    lines = [f"**{_md_escape(table.caption)}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
    lines.append("|" + "|".join(" --- " for _ in table.columns) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    lines += [""] + [_md_escape(n) for n in table.notes] if table.notes else []
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    """A ``table`` float with booktabs rules; bold best, underlined second."""
    def cell(c: Cell) -> str:
        text = latex_escape(c.text)
        return rf"\textbf{{{text}}}" if c.mark == "best" else rf"\underline{{{text}}}" if c.mark == "second" else text

    spec = "l" * min(2, len(table.columns)) + "r" * max(0, len(table.columns) - 2)
    lines = [r"% needs \usepackage{booktabs}", r"\begin{table}[t]", r"\centering"]
    if table.caption:
        lines.append(rf"\caption{{{latex_escape(table.caption)}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
              " & ".join(latex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\smallskip{{\footnotesize {latex_escape(n)}}}" for n in table.notes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    """A standalone page (Snakemake's report embeds it as is)."""
    def cell(c: Cell) -> str:
        text = html.escape(c.text)
        return f"<b>{text}</b>" if c.mark == "best" else f"<u>{text}</u>" if c.mark == "second" else text

    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in table.notes)
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    style = ("table{border-collapse:collapse;font-family:sans-serif;font-size:14px}"
             "td,th{border-bottom:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}caption{font-weight:bold;margin:6px}"
             ".note{font-family:sans-serif;font-size:12px;color:#444}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><style>{style}</style></head><body>\n"
            f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>{notes}\n"
            "</body></html>\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_table(table: Table, numbers: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """``<prefix>.csv`` (the numbers, unrounded), ``.md``, ``.tex`` and ``.html`` (the formatted table)."""
    prefix = Path(prefix)
    paths = [prefix.with_name(prefix.name + s) for s in (".csv", ".md", ".tex", ".html")]
    with atomic_path(paths[0]) as tmp:
        numbers.to_csv(tmp, index=False)
    write_text(paths[1], to_markdown(table))
    write_text(paths[2], to_latex(table))
    write_text(paths[3], to_html(table))
    return paths
