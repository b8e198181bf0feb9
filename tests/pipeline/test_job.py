"""Where the job runs, and the device checked there (pipeline/job.py)."""


import pytest

from imagemend.pipeline import options


def test_cuda_is_checked_on_the_launcher_only_where_the_job_runs():
    from imagemend.pipeline import job

    assert job.runs_here(options.beam_args([]))
    assert job.runs_here(["--runner", "PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"])
    assert not job.runs_here(["--runner=DataflowRunner", "--project=p"])
    assert not job.runs_here(["--runner=FlinkRunner", "--environment_type=EXTERNAL"])
    job.check_device("cuda", ["--runner=DataflowRunner"])  # the workers have the GPUs, not the launcher
    job.check_device("cpu", options.beam_args([]))
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available on this machine"):
            job.check_device("cuda:0", options.beam_args([]))
