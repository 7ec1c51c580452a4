"""Run-wide state and bookkeeping: control, guards, tallies, commit progress, replay plans."""
