"""The one exception a dissector raises on bytes that are wrong (not merely incomplete).

"Need more bytes" is never an exception: parsers simply wait.  ``Malformed``
never escapes the public parser API: it becomes a ``DecodeFinding`` event and
the parser resynchronises.  Any other exception escaping a dissector is a bug.
"""

from __future__ import annotations


class Malformed(Exception):
    """Bytes that break the encoding the standard defines; ``code`` is a rule ID."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
