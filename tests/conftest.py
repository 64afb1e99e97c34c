"""Fixtures; the helpers they build on (and that tests import) are in tests/helpers.py."""

import os

import pytest

from sac_runner.config import compose, validate
from tests import helpers

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture
def make_cfg():
    """A config factory: make_cfg(*overrides) is the validated config `sac-train <overrides>` runs with."""

    def make(*overrides):
        return validate(compose(*overrides))

    return make


@pytest.fixture
def make_trainer(tmp_path):
    """A Trainer factory, make_trainer(run_dir=None, *overrides, hooks=()), on the TINY budget (run_dir: a fresh
    directory under tmp_path by default); every trainer it made is closed when the test ends."""
    made = []

    def make(run_dir=None, *overrides, hooks=()):
        trainer = helpers.new_trainer(run_dir or tmp_path / f"run{len(made)}", *overrides, hooks=hooks)
        made.append(trainer)
        return trainer

    yield make
    for trainer in made:
        trainer.close()
