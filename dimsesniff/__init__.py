"""dimsesniff: DICOM network traffic analyzer (application: sources, pipeline, checks, reports).

For notebooks::

    import dimsesniff
    tables = dimsesniff.analyze("capture.pcap")
    tables.messages, tables.associations, tables.violations  # pandas DataFrames

``analyze`` is loaded on first use (module ``__getattr__``), so that the
command line starts without importing pandas or the analysis modules it
does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["__version__", "analyze", "read_table"]

if TYPE_CHECKING:
    from .api import analyze
    from .report.schema import read_table


def __getattr__(name: str) -> object:
    if name == "analyze":
        from .api import analyze

        return analyze
    if name == "read_table":
        from .report.schema import read_table

        return read_table
    raise AttributeError(f"module 'dimsesniff' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
