"""Scheduler: evaluation cycles, replay and the run loop."""
