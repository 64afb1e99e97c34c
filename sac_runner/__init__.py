"""sac_runner: a Hydra-configured command-line runner for Soft Actor-Critic."""

__version__ = "0.1.0"
