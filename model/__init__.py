"""imagemend's multitask restoration network: degradations, network, training, restoration."""

from .restore import Restored, Restorer
from .tasks import TASKS

__all__ = ["TASKS", "Restored", "Restorer"]
