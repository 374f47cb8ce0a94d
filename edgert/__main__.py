"""``python -m edgert`` runs the CLI (also the device runner on boards)."""
import sys

from edgert.cli import main

sys.exit(main())
