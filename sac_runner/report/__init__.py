"""`sac-report`: compare runs and sweeps. cli.py parses the command line; data.py finds and reads the runs,
groups.py groups and labels them, stats.py computes each group's statistics, render.py writes the table, CSV,
Markdown and plot. None of it imports torch (sac-report --help answers at once)."""
