"""``python -m augshift.cli ...``: the ``augshift`` command."""
import sys

from . import main

sys.exit(main())
