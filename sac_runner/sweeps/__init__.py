"""What `sac-train -m` adds to a run: failures recorded per job (multirun.py), the Optuna search (its Hydra sweeper
in optuna_sweeper.py, the trial reporter of each job in optuna_trial.py, what both share in optuna_study.py), and
each run's TensorBoard HParams entry (hparams.py)."""
