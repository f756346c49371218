"""Text from the wire, made safe to print on a terminal.

AE titles, Error Comments, file names and the messages that quote them can hold
control characters: an ANSI / OSC escape sequence (``ESC [ 2 J`` clears the
screen, ``ESC ] 0 ;`` retitles the window), a carriage return that overwrites the
line, a bidirectional override (U+202E) that reverses what follows.  Printed as
they are, they let a peer rewrite what an engineer sees.  ``printable`` shows
each such character as a visible escape instead.  For rich, whose markup would
read ``[/]`` or ``[bold]`` in such text, also ``rich.markup.escape`` the result
(or hand it over as a ``rich.text.Text``).
"""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every non-printable character (C0, DEL, C1, format characters such
    as bidirectional overrides, unassigned code points) written as ``\\x1b``, ``\\u202e``..."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
