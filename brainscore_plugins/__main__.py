"""``python -m brainscore_plugins``: the ``brainscore-plugins`` command."""
import sys

from .cli import main

sys.exit(main())
