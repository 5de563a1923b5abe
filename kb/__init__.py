"""kb — a self-healing knowledge base for test failures.

Library first: :func:`kb.diagnose.diagnose` does what ``kb diagnose`` does.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
