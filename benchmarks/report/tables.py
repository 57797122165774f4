"""Markdown and LaTeX tables of text cells, rendered through pandas (``to_markdown``, ``Styler.to_latex``).

The report writes cells as text it has already formatted (``0.850 ± 0.012 (n=2)``), so these
functions only lay them out: no number parsing, no padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tabulate import DataRow, TableFormat

DASH = "–"


def fmt(value: float | None, signed: bool = False) -> str:
    """A number with three decimals (``+`` signed if asked), or a dash when there is none."""
    if value is None or not np.isfinite(value):
        return DASH
    value = round(float(value), 3) + 0.0  # + 0.0: -0.0004 rounds to -0.0, which would print as "-0.000"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def plural(n: int, word: str) -> str:
    """A count and its noun: "1 class", "10 classes", "2 models"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('s') else 's'}"


def _pipe_format(numbers: bool) -> TableFormat:
    """GitHub's pipe table without padding, so a cell reads the same in the file as in the rendered table.

    tabulate's own ``pipe`` format pads every column to its widest cell; the alignment row here is
    fixed instead (first column left, the rest right if ``numbers``).
    """

    def alignment_row(colwidths: Sequence[int], _colaligns: Sequence) -> str:
        return "|" + "|".join([":---", *[("---:" if numbers else ":---")] * (len(colwidths) - 1)]) + "|"

    row = DataRow("| ", " | ", " |")
    return TableFormat(
        lineabove=None,
        linebelowheader=alignment_row,
        linebetweenrows=None,
        linebelow=None,
        headerrow=row,
        datarow=row,
        padding=0,
        with_header_hide=None,
    )


_PIPE = {numbers: _pipe_format(numbers) for numbers in (True, False)}


def _escape_markdown(text: str) -> str:
    return str(text).replace("|", r"\|")  # a bare pipe would end the cell


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], numbers: bool = True) -> str:
    """A GitHub-flavoured Markdown table: first column left-aligned, the rest right-aligned if ``numbers``."""
    cells = [[_escape_markdown(c) for c in row] for row in rows]
    frame = pd.DataFrame(cells, columns=range(len(header)), dtype=object)
    return frame.to_markdown(
        index=False,
        headers=[_escape_markdown(h) for h in header],
        tablefmt=_PIPE[numbers],
        disable_numparse=True,  # "0.850" stays "0.850", not 0.85
        stralign=None,  # no alignment: cells are neither padded nor stripped
        numalign=None,
    )


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    DASH: "--",
    "±": r"$\pm$",
}


def escape_latex(text: str) -> str:
    """Escape LaTeX's special characters in plain text (a caption); the dash and ± become LaTeX's own."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


def latex_tabular(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A booktabs ``tabular`` (first column left, the rest centred); ``$...$`` spans in cells stay math."""
    frame = pd.DataFrame([list(row) for row in rows], columns=list(header), dtype=object)
    styler = frame.style.hide(axis="index").format(escape="latex-math").format_index(escape="latex", axis=1)
    return styler.to_latex(column_format="l" + "c" * (len(header) - 1), hrules=True).rstrip("\n")
