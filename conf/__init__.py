"""Hydra configuration tree shipped with sac_runner (lives at the repository top level as conf/)."""
