"""What sac_runner knows about its config keys, in one table: which keys a resume may change, which ones are a
run's hyperparameters in TensorBoard's HParams dashboard, and which ones set runs apart in sac-report's groups.

A key that is not in KEYS has the default Key(): a resume may not change it, and when a run's command line
overrides it, it is a hyperparameter and splits report groups (algorithm.*, architecture.*, env, ...).
Hydra's own keys (hydra.*, hydra/launcher=...) are neither hyperparameters nor group keys.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """resume: `sac-train resume=<run dir> <key>=<value>` may change it (everything else comes from the run's
    config.yaml). hparam: a command-line override of it is a hyperparameter of the run (TensorBoard HParams).
    groups: runs that differ in it are different groups in sac-report. from_defaults: a run resumed from a
    config.yaml written before the key existed takes the current default (False: leaves it out)."""

    resume: bool = False
    hparam: bool = True
    groups: bool = True
    from_defaults: bool = True


KEYS: dict[str, Key] = {
    "seed": Key(groups=False),  # a group is the same settings over several seeds
    "algorithm.total_steps": Key(resume=True),  # extend a run's budget
    "checkpoint.save_replay_buffer": Key(resume=True),
    "progress": Key(resume=True, hparam=False, groups=False),
    "save_video": Key(resume=True, hparam=False, groups=False),
    "device": Key(resume=True, hparam=False),
    "threads": Key(resume=True, hparam=False),
    "compile": Key(resume=True),
    "cuda_graph": Key(resume=True),
    "resume": Key(hparam=False, groups=False),
    "hparams_search.trial": Key(hparam=False),  # the trial number: HParams show it as "trial"
    # what an env preset says about itself (conf/env/<id>.yaml); an old run's config.yaml has none, and the
    # current default (the default env's) would describe another task
    "preset": Key(hparam=False, groups=False, from_defaults=False),
}
# keys of Hydra itself, as overrides name them (hydra.run.dir=..., hydra/launcher=parallel)
HYDRA_PREFIXES = ("hydra.", "hydra/")

# the views the code reads
RESUME_OVERRIDABLE = tuple(k for k, v in KEYS.items() if v.resume)
NOT_HPARAMS = ("hydra.", *(k for k, v in KEYS.items() if not v.hparam))  # prefixes of override keys
NOT_GROUPING = tuple(k for k, v in KEYS.items() if not v.groups)
NOT_FROM_DEFAULTS = tuple(k for k, v in KEYS.items() if not v.from_defaults)
