"""``python -m capjax.cli``: the same as the ``capjax`` command."""

import sys

from capjax.cli.main import main

sys.exit(main())
