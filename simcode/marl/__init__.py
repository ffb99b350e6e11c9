"""MADDPG on the MPE environments of mpe2 (torch): states as flat vectors, a pure batched update.

Knows nothing of coding or clocks. The simulator uses `Trainer` (trainer.py) and `describe`
(envs.py); the command line uses `train`, `evaluate` and `bench`.
"""

from simcode.marl.envs import MaddpgShapes, describe, make_env
from simcode.marl.trainer import Trainer

__all__ = ["MaddpgShapes", "Trainer", "describe", "make_env"]
