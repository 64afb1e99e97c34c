"""Training one run: the loop (trainer.py) and its hooks, the run's live state (state.py), the checkpoint file
format (checkpoint.py), evaluation, TensorBoard logging, stop signals, and the loop's two hot calls (steps.py)."""
