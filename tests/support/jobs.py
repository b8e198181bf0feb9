"""Running the job from a test."""


def run_job(input: str, output: str, storage_options: dict | None = None, beam: list[str] | None = None,
            **kw) -> dict:
    """The job exactly as `imagemend run` starts it, in this process, with the in-process FnApiRunner."""
    from imagemend.pipeline import job, options

    opts = options.RunOptions.of(input, output, storage_options=storage_options or {}, **kw)
    return job.run(opts, options.beam_args(beam or []))
