"""Text helpers the Jinja fix templates use as filters (``fixes/*.j2``).

Python source is not edited here: code edits are LibCST codemods (:mod:`kb.fix.codemods`).
"""

from __future__ import annotations

import re

__all__ = ["regex_escape"]


def regex_escape(text: str) -> str:
    """``text`` as a regex that matches it literally (a filterwarnings message field): only the
    characters special to a regex are escaped, so the entry stays readable."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)
