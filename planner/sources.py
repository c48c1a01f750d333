"""Literature references out of runner-facing sentences and into one "Sources" list (pure).

Plans and e-mails cite their sources once, at the end. :class:`Citations` rewrites a sentence:
a parenthesis that names a source — an author and year ("Weyand & Davis 2005", "Girard et al.
2019"), a journal and year, or Garmin's published bands — becomes a number like ``[1]``, and
the parenthesis' words become entry 1 of the list, completed with the full reference from
:data:`planner.reference.SOURCES` when we hold one. Numbers follow the order of first use; the
same words cited twice keep one number. Parentheses without a source stay as written.
"""

from __future__ import annotations

import re
from typing import Final

from planner.reference import SOURCES

#: What marks a parenthesis as a citation: "Author 2005", "Author et al. 2019",
#: "Author & Other 2005", "J Athl Train 2020", or Garmin's bands.
_CITATION: Final = re.compile(
    r"[A-Z][\w'’\-]+(?: et al\.?| & [A-Z][\w'’\-]+)?,? (?:19|20)\d\d"
    r"|\b[A-Z][a-z]* [A-Z][\w ]* (?:19|20)\d\d"
    r"|\bGarmin\b"
)
_PAREN: Final = re.compile(r"\s*\(([^()]*)\)")
_KEY: Final = re.compile(r"^([a-z_]+?)_((?:19|20)\d\d)$")

#: Drill sources that are not a study: shown once, in plain words.
PRACTITIONER: Final = "practitioner"
PRACTITIONER_TEXT: Final = (
    "Drills marked with this number are common coaching practice: no study gives their dose."
)


#: A bare "(Garmin)" cites Garmin's published bands (domain.md §2).
GARMIN_TEXT: Final = "Garmin owner's manuals: running-dynamics colour zones and GCT balance bands"


def full_reference(words: str) -> str | None:
    """The full reference for a short citation, when :data:`SOURCES` holds it."""
    lowered = words.lower()
    if lowered == "garmin":
        return GARMIN_TEXT
    for key, text in SOURCES.items():
        match = _KEY.match(key)
        if match is None:
            continue
        author, year = match.group(1).replace("_", " "), match.group(2)
        if author in lowered and year in words:
            return text
    return None


class Citations:
    """Collects the sources of one rendered plan, in order of first use."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def number(self, words: str) -> int:
        """The number of a source (added when new)."""
        words = words.strip()
        if words not in self.items:
            self.items.append(words)
        return self.items.index(words) + 1

    def __call__(self, text: object) -> str:
        """``text`` with each cited parenthesis replaced by its number."""

        def swap(match: re.Match[str]) -> str:
            inner = match.group(1)
            if not _CITATION.search(inner):
                return match.group(0)
            return f" [{self.number(inner)}]"

        return _PAREN.sub(swap, str(text))

    def entries(self) -> list[str]:
        """The numbered list's lines: the words cited, then the full reference when known."""
        out = []
        for words in self.items:
            if words == PRACTITIONER_TEXT:
                out.append(words)
                continue
            full = full_reference(words)
            out.append(f"{words}. {full}." if full and full not in words else f"{words}.")
        return out
