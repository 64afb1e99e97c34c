"""The SAC core: the losses and the update (sac.py), the networks, the replay buffer, and the factory that builds
an agent from the config (factory.py). It knows nothing of runs or checkpoint files."""
