"""``python -m cspd_ref.cli``: the ``cspd`` command."""

import sys

from cspd_ref.cli import main

sys.exit(main())
