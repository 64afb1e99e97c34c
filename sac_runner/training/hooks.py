"""The public hooks into the training loop: subclass Hook and pass instances to Trainer(hooks=...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # for the annotations only: the trainer imports this module
    from sac_runner.training.trainer import Trainer


@dataclass
class Evaluation:
    """One evaluation: its env step, the episodes' returns, and the seconds it took with its checkpoints."""

    env_steps: int
    returns: np.ndarray
    seconds: float

    @property
    def mean(self) -> float:
        return float(self.returns.mean())


class Hook:
    """Called from the loop (subclass and override; the benchmark, the Optuna trial reporter and the tests do)."""

    def on_step(self, trainer: Trainer) -> None:
        """After each environment step and its gradient steps (and evaluation, when one was due)."""

    def on_evaluation(self, trainer: Trainer, evaluation: Evaluation) -> None:
        """After each evaluation and the checkpoints it writes."""
