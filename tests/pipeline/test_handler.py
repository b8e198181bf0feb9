"""RestoreModelHandler: imagemend inside a user's own Beam pipeline, on a real (in-process) runner."""

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that
import numpy as np
from skimage import data

from imagemend.model.metrics import psnr
from imagemend.pipeline.handler import RestoreModelHandler

CLEAN = [data.astronaut()[:96, :128], data.coffee()[:80, :112]]  # two sizes in one batch


def test_run_inference_restores_each_image_of_a_batch_of_sizes():
    rng = np.random.default_rng(0)
    noisy = [np.clip(c + rng.normal(0, 20, c.shape), 0, 255).astype(np.uint8) for c in CLEAN]

    def check(results):
        assert len(results) == 2
        for r in results:
            clean = next(c for c in CLEAN if c.shape == r.example.shape)
            assert r.inference.image.shape == clean.shape and r.inference.applied["denoise"]
            assert psnr(r.inference.image, clean) > psnr(r.example, clean) + 3

    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(noisy) | RunInference(RestoreModelHandler(device="cpu"))
        assert_that(out, check)
