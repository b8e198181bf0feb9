"""imagemend's multitask restoration network: degradations, network, training, restoration."""

from .config import TASKS
from .restore import Restored, Restorer

__all__ = ["TASKS", "Restored", "Restorer"]
