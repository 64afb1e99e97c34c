"""sac_runner: a Hydra-configured command-line runner for Soft Actor-Critic.

The Python API: `sac_runner.load_policy(run dir or checkpoint)` returns a trained agent as a callable from
observations to environment actions (sac_runner/policy.py). It is imported at first use, so that `import
sac_runner` (and sac-report, which imports no torch) stays light.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

# OpenMP threads that wait for work sleep instead of spinning: spinning threads of one run take the cores that
# other processes need, and threads=auto's runs were up to 80x slower under load (sac_runner/threads.py). libgomp
# reads this when torch loads it, so only before torch is imported; a value the user set is kept
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["Policy", "__version__", "load_policy"]

if TYPE_CHECKING:
    from sac_runner.policy import Policy, load_policy


def __getattr__(name: str) -> Any:
    if name in ("load_policy", "Policy"):
        from sac_runner import policy

        return getattr(policy, name)
    raise AttributeError(f"module 'sac_runner' has no attribute {name!r}")
