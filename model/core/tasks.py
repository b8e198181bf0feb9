"""The five restoration tasks, each named once, with everything the code needs to know per task."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    threshold: str  # the RestoreConfig field that gates it (weights carry calibrated values, tools/calibrate.py)
    damage: str  # the DegradationConfig switch p_<damage> that trains it
    estimate: str  # the severity (Restorer.estimate) it is gated and reported on
    unit: str  # that severity's unit
    truth: str  # the parameter a damage case records, which the estimate is scored against
    tone: bool  # a global colour/tone correction, once per image (else a local, per-pixel restoration)


REGISTRY = (
    Task("denoise", "min_noise_sigma", "noise", "noise_sigma", "Gaussian-equivalent noise sigma, 8-bit steps",
         "noise_sigma", tone=False),
    Task("deblur", "min_blur", "blur", "blur", "blur radius, px", "blur", tone=False),
    Task("cast", "min_cast", "cast", "cast", "max |log channel gain|", "cast", tone=True),
    Task("exposure", "min_exposure", "exposure", "exposure_ev", "exposure error, EV", "exposure_ev", tone=True),
    Task("contrast", "min_contrast", "contrast", "contrast_curve", "max |tone curve - identity|", "contrast",
         tone=True),
)
TASK = {t.name: t for t in REGISTRY}
TASKS = tuple(TASK)
TONE_TASKS = tuple(t.name for t in REGISTRY if t.tone)
THRESHOLD = {t.name: t.threshold for t in REGISTRY}
