"""``python -m cspd_ref.cli``: the ``cspd`` command."""

import sys

from cspd_ref.cli import main

if __name__ == "__main__":
    sys.exit(main())
