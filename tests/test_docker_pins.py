"""Worker images must carry the launcher's versions: Beam's boot and SDK, Python, torch."""

from pathlib import Path
import re
import tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))


def pinned(name: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for d in deps:
        m = re.match(rf"{re.escape(name)}\s*==\s*([\w.]+)", d)
        if m:
            return m.group(1)
    raise AssertionError(f"{name} is not pinned with == in pyproject.toml")


def test_there_is_a_gpu_and_a_cpu_image():
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile.gpu", "Dockerfile.cpu"}


def test_images_pin_the_same_beam_python_and_torch_as_the_project():
    beam = pinned("apache-beam")
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"].lstrip(">=")
    readme_torch = re.search(r"pip install torch==([\d.]+)", (ROOT / "README.md").read_text()).group(1)
    for path in DOCKERFILES:
        text = path.read_text()
        assert f"ARG BEAM_VERSION={beam}" in text, path.name
        assert f"ARG PYTHON_VERSION={python}" in text, path.name
        # the base image pinned to a patch release and a Debian release, not a moving tag
        assert re.search(rf"^FROM python:{re.escape(python)}\.\d+-slim-[a-z]+$", text, re.M), path.name
        assert f"torch=={readme_torch}" in text, path.name
        assert "apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}" in text, path.name
        assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in text, path.name
        assert re.search(r"pip install \"?\.\[", text), f"{path.name} must install the project itself"


def test_images_install_the_dataflow_extra_with_the_constraints():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["dataflow"] == [f"apache-beam[gcp]=={pinned('apache-beam')}"]
    for path in DOCKERFILES:
        text = path.read_text()
        assert "COPY pyproject.toml README.md constraints.txt ./" in text, path.name
        assert 'pip install ".[dataflow,s3,gcs]" -c constraints.txt' in text, path.name
