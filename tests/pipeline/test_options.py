"""Command-line options to RunOptions and Beam's arguments (pipeline/options.py)."""

import argparse

import pytest

from imagemend.pipeline import options
from imagemend.pipeline.options import RunOptions


def test_options_parse_tasks_strengths_and_beam_flags():
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    args = p.parse_args(["--input", "i", "--output", "o", "--tasks", "denoise,cast", "--strength", "cast=0.5"])
    opts = options.from_args(args)
    assert opts.model.strengths == {"denoise": 1.0, "cast": 0.5} and opts.run_id
    assert options.parse_strength("0.3") == {t: 0.3 for t in ("denoise", "deblur", "cast", "exposure", "contrast")}
    for bad in ("sharpen", "denoise,zoom"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.parse_tasks(bad)
    with pytest.raises(ValueError):
        RunOptions.of("i", "o", strengths={"zoom": 1.0})
    told = options.from_args(p.parse_args(["--input", "i", "--output", "o", "--assume", "exposure,contrast"]))
    assert opts.model.assume == () and told.model.assume == ("exposure", "contrast")
    with pytest.raises(ValueError):
        RunOptions.of("i", "o", assume=("zoom",))
    with pytest.raises(TypeError, match="no option 'zoom'"):
        RunOptions.of("i", "o", zoom=1)
    assert options.beam_args([]) == ["--runner=FnApiRunner"]  # never the Prism-downloading default
    assert options.beam_args(["--runner", "PortableRunner"]) == ["--runner", "PortableRunner"]
    assert "--direct_num_workers=3" in options.beam_args([], workers=3)
