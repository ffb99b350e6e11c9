"""Figures whose bytes depend on their data only, written atomically.

Matplotlib stamps each file with the toolchain (PNG `Software`: its version) and, for PDF and SVG,
the date: the same study would give different plots on another machine or another day. Each key
set to None here is left out of the file; SVG element ids, random by default, come from a fixed
salt. Used by study plots and the training curve.
"""

from __future__ import annotations

from pathlib import Path

from simcode import atomic

# Per format, the metadata keys matplotlib fills with its version or the current date.
VOLATILE_METADATA = {
    ".png": {"Software": None},
    ".pdf": {"Creator": None, "Producer": None, "CreationDate": None},
    ".svg": {"Creator": None, "Date": None},
}


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write `fig` to `path` (format from its suffix) with no volatile metadata; the file appears whole."""
    import matplotlib

    path = Path(path)
    with atomic.replacing(path) as tmp, matplotlib.rc_context({"svg.hashsalt": "simcode"}):
        fig.savefig(tmp, dpi=dpi, metadata=VOLATILE_METADATA.get(path.suffix.lower()))
    return path
