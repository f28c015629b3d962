"""Learning: the run's settings, the training loop, its evaluation schedule and its history."""
