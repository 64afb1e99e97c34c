"""`python -m sac_runner.report`: sac-report."""

import sys

from sac_runner.report.cli import main

sys.exit(main())
