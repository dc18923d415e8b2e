"""Training: one fold, resumable; optimiser, losses, health flags, run folders, post-processing choice."""
