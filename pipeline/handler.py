"""imagemend as a Beam `ModelHandler`, for users who have their own pipeline.

    from apache_beam.ml.inference.base import RunInference
    from .handler import RestoreModelHandler

    restored = images | RunInference(RestoreModelHandler())   # PredictionResult(image, Restored)

Each element is one image (a NumPy array, a PIL image or a path); a batch of them is restored in
one call, whatever their sizes (the Restorer tiles each image; it never stacks them). Each worker
process loads the weights once. `imagemend run` does not use this handler: its own shard worker
adds decoding, resume, metrics and error rows around the same Restorer.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from imagemend.model import Restorer
from imagemend.model.core.weights import DEFAULT_WEIGHTS


class RestoreModelHandler(ModelHandler[Any, PredictionResult, Restorer]):
    def __init__(self, weights: str = str(DEFAULT_WEIGHTS), device: str | None = None,
                 tasks: dict[str, float] | None = None, max_batch_size: int = 8):
        """tasks: strengths per task, as Restorer.restore takes them (default every task at full)."""
        super().__init__()
        self.weights, self.device, self.tasks, self.max_batch_size = weights, device, tasks, max_batch_size

    def load_model(self) -> Restorer:
        return Restorer(self.weights, device=self.device)

    def run_inference(self, batch: Sequence[Any], model: Restorer,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        tasks = (inference_args or {}).get("tasks", self.tasks)
        return [PredictionResult(x, r) for x, r in zip(batch, model.restore(list(batch), tasks))]

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"max_batch_size": self.max_batch_size}

    def get_metrics_namespace(self) -> str:
        return "imagemend"
