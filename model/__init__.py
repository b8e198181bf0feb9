"""imagemend's multitask restoration network: degradations, network, training, restoration."""

from .core.restore import Restored, Restorer
from .core.tasks import TASKS

__all__ = ["TASKS", "Restored", "Restorer"]
