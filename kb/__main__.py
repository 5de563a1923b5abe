"""``python -m kb`` runs the same CLI as the ``kb`` command."""

from .cli import main

main()
