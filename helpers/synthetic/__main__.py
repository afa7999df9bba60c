"""``python -m helpers.synthetic``: write the synthetic datasets (see ``helpers.synthetic``)."""

import sys

from helpers.synthetic import _main

sys.exit(_main())
