"""``python -m brainscore_plugins``: the ``brainscore-plugins`` command."""
from .cli import run

run()
