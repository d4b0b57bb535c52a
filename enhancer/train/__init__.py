"""The trainer: stages, AMP, EMA, checkpoint/resume, time limits, torchrun/DDP."""
