"""``python -m recon_restore``: the same as the ``recon-restore`` command."""

import sys

from .cli import main

sys.exit(main())
