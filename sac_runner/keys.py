"""What sac_runner knows about its config keys, in one table: which keys a resume may change, which ones are a
run's hyperparameters in TensorBoard's HParams dashboard, which ones set runs apart in sac-report's groups, and in
which ones the members of one population (hydra/launcher=population) may differ.

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
    config.yaml written before the key existed takes the current default (False: leaves it out). member: the jobs
    of a multirun that train as the members of one process (hydra/launcher=population) may differ in it: it enters
    the population's update as per-member data, or concerns only the member's own records; jobs that differ in any
    other key train in separate processes."""

    resume: bool = False
    hparam: bool = True
    groups: bool = True
    from_defaults: bool = True
    member: bool = False


KEYS: dict[str, Key] = {
    "seed": Key(groups=False, member=True),  # a group is the same settings over several seeds
    "algorithm.total_steps": Key(resume=True),  # extend a run's budget
    "checkpoint.save_replay_buffer": Key(resume=True, member=True),
    "progress": Key(resume=True, hparam=False, groups=False, member=True),
    "save_video": Key(resume=True, hparam=False, groups=False, member=True),
    "device": Key(resume=True, hparam=False),
    "threads": Key(resume=True, hparam=False),
    "compile": Key(resume=True),
    "cuda_graph": Key(resume=True),
    "resume": Key(hparam=False, groups=False, member=True),
    "hparams_search.trial": Key(hparam=False, member=True),  # the trial number: HParams show it as "trial"
    "logger": Key(hparam=False, groups=False),  # where a run's records go (logger=[...], logger.<tracker>.*)
    # what an env preset says about itself (conf/env/<id>.yaml); an old run's config.yaml has none, and the
    # current default (the default env's) would describe another task
    "preset": Key(hparam=False, groups=False, from_defaults=False, member=True),
    # the numbers a population's vmapped update takes per member (agent/population.py); the optimizers' other
    # options (weight decay, betas, eps) are constants of its compiled graph
    "actor_optimizer.lr": Key(member=True),
    "critic_optimizer.lr": Key(member=True),
    "entropy_coef_optimizer.lr": Key(member=True),
    "algorithm.discount": Key(member=True),
    "algorithm.tau": Key(member=True),
    "algorithm.init_entropy_coef": Key(member=True),
    "algorithm.target_entropy": Key(member=True),
    "objective": Key(member=True),  # how a run's value is computed from its evaluations
}
# keys of Hydra itself, as overrides name them (hydra.run.dir=..., hydra/launcher=parallel)
HYDRA_PREFIXES = ("hydra.", "hydra/")

# the views the code reads
RESUME_OVERRIDABLE = tuple(k for k, v in KEYS.items() if v.resume)
NOT_HPARAMS = ("hydra.", *(k for k, v in KEYS.items() if not v.hparam))  # prefixes of override keys
NOT_GROUPING = tuple(k for k, v in KEYS.items() if not v.groups)
NOT_FROM_DEFAULTS = tuple(k for k, v in KEYS.items() if not v.from_defaults)
MEMBER_KEYS = tuple(k for k, v in KEYS.items() if v.member)  # a key or a prefix (objective: objective.*)
