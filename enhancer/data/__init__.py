"""Training data: synthetic degradations and training clips."""
