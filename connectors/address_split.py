"""Cut an address-list header into its entries so one malformed address cannot swallow its neighbours.

`email.utils.getaddresses` parses a whole header at once: an unbalanced quote or comment there eats the
rest of the list, and junk beside an address can be glued onto it (CVE-2023-27043). Here commas and
semicolons split entries unless a quoted string or a comment protects them. A quote or parenthesis that
never closes, or a quote left open when another quoted string plainly starts, is taken literally and its
entry marked unbalanced, so only that entry is lost. Group syntax (`team: a@x, b@y;`,
`undisclosed-recipients:;`) contributes its members.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_QUOTE_MAY_OPEN_AFTER = frozenset(" \t\r\n,;:<(")
_QUOTE_MAY_CLOSE_BEFORE = frozenset(" \t\r\n,;:<>()@")
_SCANNED = re.compile(r'["()\\:]')  # what only the full scan handles: quotes, comments, quoted-pairs, groups
_SEPARATOR = re.compile(r"[,;]")
_ANGLE = re.compile(r"[<>]")


@dataclass(frozen=True)
class Entry:
    """One address-list entry's raw text, and whether its quotes, comments and <> pair up."""

    text: str
    balanced: bool


@dataclass
class _Scan:
    """The entries so far and the current entry's progress; `mark`/`rewind` undo a stray opener."""

    value: str
    entries: list[Entry] = field(default_factory=list)
    start: int = 0  # where the current entry's text begins
    balanced: bool = True
    angle_depth: int = 0

    def mark(self) -> tuple[int, int, bool, int]:
        return len(self.entries), self.start, self.balanced, self.angle_depth

    def rewind(self, mark: tuple[int, int, bool, int]) -> None:
        count, self.start, self.balanced, self.angle_depth = mark
        del self.entries[count:]

    def end_entry(self, end: int) -> None:
        self.entries.append(Entry(self.value[self.start : end], self.balanced and self.angle_depth == 0))
        self.start, self.balanced, self.angle_depth = end + 1, True, 0

    def top_level(self, i: int) -> None:
        """A character outside quotes and comments: separators, groups, angle brackets, strays."""
        char = self.value[i]
        if char in ",;":
            self.end_entry(i)
        elif char == ":" and self.angle_depth == 0:  # a group's display name is not an address
            self.start, self.balanced = i + 1, True
        elif char == "<":
            self.angle_depth += 1
            self.balanced = self.balanced and self.angle_depth == 1
        elif char == ">":
            self.angle_depth -= 1
            self.balanced = self.balanced and self.angle_depth == 0
        elif char in ')"':  # a closer with no opener, or a quote glued to a word
            self.balanced = False


@dataclass(frozen=True)
class _Open:
    """A quote or "(" not closed yet, with the scan's mark just before it."""

    position: int
    char: str
    mark: tuple[int, int, bool, int]


def split_entries(value: str) -> list[Entry]:
    """The entries of an address-list header value, in order, each with its balance verdict."""
    if _SCANNED.search(value) is None:  # the common header: names without quotes, no comments or groups
        return [Entry(text, _angles_pair(text)) for text in _SEPARATOR.split(value)]
    return _scanned_entries(value)


def _angles_pair(text: str) -> bool:
    """The full scan's verdict on an entry with no quotes or comments: its <> nest once and close."""
    depth, balanced = 0, True
    for char in _ANGLE.findall(text):
        depth += 1 if char == "<" else -1
        balanced = balanced and depth == (1 if char == "<" else 0)
    return balanced and depth == 0


def _scanned_entries(value: str) -> list[Entry]:
    """split_entries character by character, for values with quotes, comments, quoted-pairs or groups."""
    scan = _Scan(value)
    literal: set[int] = set()  # openers found never to close: plain characters from now on
    stack: list[_Open] = []

    def demote_open() -> int:
        """Take every open opener literally; rescan from the outermost one."""
        literal.update(opened.position for opened in stack)
        scan.rewind(stack[0].mark)
        position = stack[0].position
        stack.clear()
        return position

    i = 0
    while i < len(value):
        char = value[i]
        inside = stack[-1].char if stack else None
        if i in literal:
            scan.balanced = scan.balanced and inside is not None
        elif inside is not None and char == "\\":
            i += 1  # quoted-pair: the next character is plain
        elif inside == '"':
            if char == '"':
                if i + 1 == len(value) or value[i + 1] in _QUOTE_MAY_CLOSE_BEFORE:
                    stack.pop()
                elif value[i - 1] in _QUOTE_MAY_OPEN_AFTER:  # a new quoted string: the open one was stray
                    i = demote_open()
                    continue
        elif char == "(":
            stack.append(_Open(i, char, scan.mark()))
        elif inside == "(":
            if char == ")":
                stack.pop()
        elif char == '"' and (i == 0 or value[i - 1] in _QUOTE_MAY_OPEN_AFTER):
            stack.append(_Open(i, char, scan.mark()))
        else:
            scan.top_level(i)
        i += 1
        if i >= len(value) and stack:  # never closed
            i = demote_open()
    scan.end_entry(len(value))
    return scan.entries
