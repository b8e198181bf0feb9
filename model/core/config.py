"""Every tunable of the model in one place, with defaults that work.

Ranges are in the units a photographer would use: noise sigma in 8-bit steps, blur in pixels,
cast as linear-light channel gains, exposure in EV, contrast as a factor around the mean.
"""

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class CameraConfig:
    """Camera-pipeline damage (model/damage/camera.py): noise added in raw, then the camera's processing.
    shot / read are variances in linear raw units; the shot range spans about ISO 100 to 12800."""
    shot: tuple[float, float] = (1e-5, 1e-2)  # log-uniform
    read_line: tuple[float, float] = (2.18, 1.20)  # log(read) = slope * log(shot) + intercept ...
    read_jitter: float = 0.26  # ... + this times a standard normal
    red_gain: tuple[float, float] = (1.9, 2.4)  # white balance the camera applies
    blue_gain: tuple[float, float] = (1.5, 1.9)
    digital_gain: tuple[float, float] = (0.8, 0.1)  # 1 / normal(mean, std)
    p_sharpen: float = 0.7
    sharpen_amount: tuple[float, float] = (0.2, 1.2)
    sharpen_radius: tuple[float, float] = (0.6, 1.5)  # px
    p_resize: float = 0.3
    sensor_scale: tuple[float, float] = (1.0, 2.0)  # sensor pixels per output pixel, a side
    p_noise_reduction: float = 0.9
    nr_luma: tuple[float, float] = (0.6, 1.8)  # Gaussian sigma (px) the noise's luma is low-passed with
    nr_chroma: tuple[float, float] = (0.8, 2.5)  # and its chroma
    p_jpeg: float = 0.9
    jpeg_quality: tuple[int, int] = (75, 98)  # 4:2:0 chroma, as cameras save


@dataclass(frozen=True)
class DegradationConfig:
    p_clean: float = 0.12  # share of samples left untouched (a restorer must leave clean photos alone)
    p_noise: float = 0.6
    p_blur: float = 0.4
    p_cast: float = 0.35
    p_exposure: float = 0.35
    p_contrast: float = 0.35
    p_jpeg: float = 0.2
    noise_sigma: tuple[float, float] = (1.0, 55.0)  # 8-bit units, at mid grey
    p_noise_grey: float = 0.15  # same noise in every channel
    p_noise_correlated: float = 0.15  # channels mixed, as after demosaicing
    p_noise_poisson: float = 0.3  # signal-dependent share of the variance
    blur_sigma: tuple[float, float] = (0.4, 3.0)  # Gaussian std, px
    blur_aniso_ratio: tuple[float, float] = (0.25, 1.0)
    motion_length: tuple[float, float] = (3.0, 13.0)  # px
    defocus_radius: tuple[float, float] = (1.0, 4.0)  # px
    blur_kernel: int = 21
    cast_log_gain: float = 0.4  # per-channel |log gain| <= this, then luminance-normalised
    exposure_ev: tuple[float, float] = (-2.2, 1.5)
    contrast_factor: tuple[float, float] = (0.4, 1.5)  # log-uniform
    gamma: tuple[float, float] = (0.7, 1.45)  # log-uniform
    p_gamma: float = 0.5
    jpeg_quality: tuple[int, int] = (35, 95)
    # of the noisy samples, the share whose noise comes through a camera pipeline instead (its own JPEG)
    p_camera: float = 0.5
    camera: CameraConfig = field(default_factory=CameraConfig)


@dataclass(frozen=True)
class NetConfig:
    widths: tuple[int, int, int] = (32, 64, 128)  # U-Net widths at 1/2, 1/4, 1/8 resolution
    blocks: tuple[int, int, int] = (1, 1, 3)  # residual blocks per encoder level (decoder mirrors)
    thumb: int = 64  # global branch sees a thumb x thumb grid of statistics
    global_width: int = 48
    curve_knots: int = 16


@dataclass(frozen=True)
class LossConfig:
    weights: dict = field(
        default_factory=lambda: {
            "denoise": 1.0, "deblur": 1.0, "cast": 1.0, "exposure": 0.3, "contrast": 10.0,  # contrast: squared
            "severity": 0.05,
        }
    )
    # "uncertainty" (Kendall et al. 2018) learns each term's weight, about 1 / L_t at its equilibrium,
    # so the fixed weights above only seed it; "fixed" uses them as given (MODEL_CARD.md, loss weighting)
    weighting: str = "uncertainty"
    # Adam moves each log-variance by about its learning rate per step: at the network's rate they
    # take thousands of steps to settle and meanwhile scale every loss alike, which Adam ignores
    uncertainty_lr: float = 0.02


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20000
    batch: int = 8
    global_size: tuple[int, int] = (192, 320)  # side of the square whole-image view the global branch sees
    patch: int = 96  # local crop the U-Net trains on
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    val_every: int = 500
    ckpt_every: int = 250
    seed: int = 0


GPU_TILES = 8


@dataclass(frozen=True)
class RestoreConfig:
    tile: int = 1024  # core tile side (multiple of 8); memory scales with this, not the image
    # context read around a core; >= the U-Net's receptive radius (82 px) plus the deconvolution
    # kernel's (model/core/deblur.py, 12 px) for exact tiling
    halo: int = 96
    border: int = 16  # reflected margin around the image, the U-Net's context at photo edges
    # input pixels per forward pass; None: one tile on CPU (batching tiles is slower there,
    # docs/PERFORMANCE.md), GPU_TILES tiles on CUDA (where batching is what fills the device)
    pixel_budget: int | None = None
    # a task whose estimated severity is below its threshold is left untouched
    min_noise_sigma: float = 1.5  # 8-bit units
    # the denoise strength rises linearly from 0 at min_noise_sigma to full at (1 + this) times it:
    # readings just above the threshold are as often texture as faint noise (chosen on Set14: journal,
    # sessions 6 to 8)
    denoise_onset: float = 1.0
    noise_cap: bool = True  # bound the noise reading by the flattest patches' (model/core/noise_floor.py)
    noise_cap_below: float = 15.0  # 8-bit: readings from here up are noise, not texture, and keep the head's
    # the camera-noise reader's RMS (model/core/noise_level.py) counts from here: above clean photos' readings
    min_camera_noise: float = 2.5  # 8-bit
    # a JPEG's noise reading is at least this (8-bit; 0: off): a camera's noise after demosaicing, noise reduction
    # and JPEG hides below what any reading here tells from texture; the largest sigma at which every clean web
    # JPEG of CSun_Hays80 stays above 40 dB against itself (MODEL_CARD.md, "Real camera photos")
    jpeg_noise_floor: float = 4.0
    min_blur: float = 0.45  # px, the global branch's reading: the sharpen head
    # Wiener deconvolution from the edges' blur reading (model/core/deblur.py): above what every clean photo
    # reads, camera photos and web JPEGs included (python -m imagemend.model.tools.edge_blur_readings; MODEL_CARD.md);
    # a Gaussian blur reads isotropic, a motion blur does not
    min_edge_blur: float = 1.3  # px
    max_anisotropy: float = 2.0
    min_cast: float = 0.03  # max |log gain|
    min_exposure: float = 0.12  # EV
    # read blind, one photo's exposure is undone only past the threshold (|EV| - min_exposure): every clean photo
    # reads within it, so that much of a reading may be the scene's own key (a low-key room at -1.6 EV), not damage
    exposure_past_threshold: bool = True
    min_contrast: float = 0.04  # max |curve - identity|


def default_pixel_budget(cfg: RestoreConfig, device_type: str) -> int:
    side = cfg.tile + 2 * cfg.halo  # a tile as the U-Net reads it
    return side * side * (GPU_TILES if device_type == "cuda" else 1)


def to_dict(cfg) -> dict:
    return asdict(cfg)
