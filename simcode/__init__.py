"""simcode: a discrete-event simulator of coded distributed training for multi-agent RL."""

__version__ = "0.1.0"
