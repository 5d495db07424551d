"""``python -m dsfnet`` (used by ``torchrun -m dsfnet train ...``)."""

import sys

from dsfnet.cli import main

sys.exit(main())
