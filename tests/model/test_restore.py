"""The restorer: exact tiling, every image mode and depth, task switches."""

import numpy as np
import pytest
from skimage import data
import torch

from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.restore import Restorer
from imagemend.model.core.tasks import TASKS


def restorer(net, **cfg):
    return Restorer(net, device="cpu", cfg=RestoreConfig(**cfg))


def photo_float(h=200, w=330):
    return data.astronaut()[:h, :w].astype(np.float32) / 255


def test_tiles_reproduce_the_untiled_result(active_net):
    img = photo_float()
    whole = restorer(active_net, tile=4096).restore([img])[0]
    assert np.abs(whole.image - img).mean() > 0.01  # the network really changes the photo
    for tile in (64, 128):
        tiled = restorer(active_net, tile=tile).restore([img])[0].image
        assert np.abs(tiled - whole.image).max() < 1e-5
        # no seam: the step across a tile boundary is like any other step in the image
        steps = np.abs(np.diff(tiled, axis=1)).mean(axis=(0, 2))
        boundary = steps[[k * tile - 17 for k in range(1, 330 // tile + 1) if k * tile - 17 < 329]]
        assert boundary.max() <= np.percentile(steps, 99.9)


def test_small_halo_is_visible_so_the_exactness_check_can_fail(active_net):
    img = photo_float()
    whole = restorer(active_net, tile=4096).restore([img])[0].image
    tiled = restorer(active_net, tile=64, halo=8).restore([img])[0].image
    assert np.abs(tiled - whole).max() > 1e-4


@pytest.mark.parametrize("shape,dtype", [
    ((1, 1), np.uint8), ((1, 1, 3), np.uint8), ((5, 3, 3), np.uint8), ((17, 33), np.uint16),
    ((31, 9, 1), np.uint8), ((12, 7, 2), np.uint8), ((40, 23, 4), np.uint16), ((9, 11, 3), np.float32),
])
def test_any_shape_and_depth_comes_back_as_it_went_in(active_net, shape, dtype):
    rng = np.random.default_rng(0)
    top = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}[dtype]
    img = (rng.random(shape) * top).astype(dtype)
    out = restorer(active_net, tile=64).restore([img])[0].image
    assert out.shape == img.shape and out.dtype == img.dtype
    if img.ndim == 3 and img.shape[2] in (2, 4):
        assert np.array_equal(out[..., -1], img[..., -1])  # alpha passes through untouched


def test_sixteen_bit_stays_sixteen_bit(active_net):
    img = (data.astronaut()[:64, :64].astype(np.uint16) * 257)
    out = restorer(active_net).restore([img])[0].image
    assert out.dtype == np.uint16 and (out % 257 != 0).mean() > 0.5  # not squeezed through 8 bits


def test_big_endian_sixteen_bit_is_read_by_value(active_net):
    img = (data.astronaut()[:32, :32].astype(np.uint16) * 257)
    r = restorer(active_net)
    native, swapped = r.restore([img, img.astype(">u2")])
    assert np.abs(native.image.astype(int) - swapped.image.astype(int)).max() <= 1  # batch-order rounding


def test_greyscale_stays_grey_and_gets_no_cast(active_net):
    grey = data.camera()[:96, :96]
    res = restorer(active_net).restore([grey, np.stack([grey] * 3, -1)])
    assert res[0].image.shape == grey.shape
    assert not res[0].applied["cast"]


def test_all_tasks_off_returns_the_input_exactly(active_net):
    img = data.chelsea()[:50, :70]
    out = restorer(active_net).restore([img], tasks={t: 0.0 for t in TASKS})[0]
    assert np.array_equal(out.image, img) and not any(out.applied.values())


def test_one_batch_of_mixed_sizes_equals_one_image_at_a_time(active_net):
    imgs = [photo_float(40, 56), photo_float(200, 130), photo_float(40, 56)[::-1].copy()]
    r = restorer(active_net, tile=64)
    together = [x.image for x in r.restore(imgs)]
    alone = [r.restore([i])[0].image for i in imgs]
    for a, b in zip(together, alone):
        assert np.abs(a - b).max() < 1e-5


def test_same_sized_photos_share_forward_passes(active_net, monkeypatch):
    """Tiles at one position of same-sized photos have one shape, so they batch together even
    when a photo's own tiles all differ in shape (as a 1 MP photo's two tiles do)."""
    imgs = [photo_float(90, 130), photo_float(90, 130)[::-1].copy(), photo_float(90, 130)[:, ::-1].copy()]
    r = restorer(active_net, tile=64)
    passes = []
    forward = r._forward
    monkeypatch.setattr(r, "_forward", lambda jobs, batch, *a: (passes.append(len(batch)), forward(jobs, batch, *a)))
    together = [x.image for x in r.restore(imgs)]
    assert max(passes) == 3 and len(passes) * 3 == sum(passes)  # every tile position in one pass
    for img, out in zip(imgs, together):
        assert np.abs(out - r.restore([img])[0].image).max() < 1e-5


def test_bad_requests_fail_clearly(active_net):
    r = restorer(active_net)
    with pytest.raises(ValueError, match="unknown task"):
        r.restore([np.zeros((4, 4, 3), np.uint8)], tasks={"sharpen": 1.0})
    with pytest.raises(ValueError, match="unsupported pixel type"):
        r.restore([np.zeros((4, 4, 3), np.int64)])
    with pytest.raises(ValueError, match="unsupported image shape"):
        r.restore([np.zeros((4, 4, 5), np.uint8)])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Restorer(active_net, device="cuda")


def test_out_of_memory_halves_the_batch_instead_of_failing(active_net, monkeypatch):
    """CUDA OOM cannot be provoked on a CPU machine; the back-off logic is exercised by raising it."""
    imgs = [photo_float(40, 56) for _ in range(4)]
    r = restorer(active_net, tile=64, pixel_budget=16 * (64 + 2 * 96) ** 2)
    expected = [x.image for x in r.restore(imgs)]
    real = r.net.local.forward
    sizes = []

    def tight(y, sigma, blur, sharpen=True):
        sizes.append(len(y))
        if len(y) > 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(y, sigma, blur, sharpen)

    monkeypatch.setattr(r.net.local, "forward", tight)
    got = [x.image for x in r.restore(imgs)]
    assert sizes[0] == 16 and sizes.count(1) == 16  # 4 images x 4 tiles, then one tile at a time
    for a, b in zip(got, expected):
        assert np.abs(a - b).max() < 1e-5
    # the halved budget was that call's: the config that the restore threads share never changes
    assert r.cfg.pixel_budget == 16 * (64 + 2 * 96) ** 2
    sizes.clear()
    r.restore(imgs)
    assert sizes[0] == 16


def test_default_pixel_budget_is_one_tile_on_cpu(active_net):
    """Batching tiles measured slower on CPU (docs/PERFORMANCE.md); an explicit budget still wins."""
    assert restorer(active_net).cfg.pixel_budget == (1024 + 2 * 96) ** 2
    assert restorer(active_net, pixel_budget=123).cfg.pixel_budget == 123


def test_denoise_strength_rises_from_the_threshold():
    """Readings just above the threshold get a partial denoise, full strength from (1 + onset) x it."""
    r = Restorer(device="cpu", calibrated=False)
    r.cfg = RestoreConfig(min_noise_sigma=2.0, denoise_onset=1.0)
    quiet = {"blur": 0.0, "edge_blur": 0.0, "edge_anisotropy": 1.0, "cast": 0.0, "exposure_ev": 0.0,
             "contrast_curve": 0.0}
    every = {t: 1.0 for t in TASKS}
    for sigma, want in ((1.9, 0.0), (3.0, 0.5), (4.0, 1.0), (9.0, 1.0)):
        applied, strength, _ = r._decide({**quiet, "noise_sigma": sigma}, every, grey=False)
        assert applied["denoise"] == (sigma >= 2.0) and strength["denoise"] == pytest.approx(want)
    assert r._decide({**quiet, "noise_sigma": 3.0}, {**every, "denoise": 0.5}, False)[1]["denoise"] == 0.25
    r.cfg = RestoreConfig(min_noise_sigma=2.0, denoise_onset=0.0)  # the hard switch
    assert r._decide({**quiet, "noise_sigma": 2.1}, every, False)[1]["denoise"] == 1.0


def test_blind_exposure_is_undone_only_past_the_threshold():
    """Every clean photo reads within min_exposure, so a blind reading of -2.3 EV against a 1.8 EV threshold
    undoes 0.5 EV (a low-key scene darkened by 1 EV read -2 and was brightened by 2, 8 dB worse than it came);
    told by the group or by --assume, the whole reading is undone; the switch turns the old behaviour back on."""
    quiet = {"noise_sigma": 0.0, "blur": 0.0, "edge_blur": 0.0, "edge_anisotropy": 1.0, "cast": 0.0,
             "contrast_curve": 0.0}
    every = {t: 1.0 for t in TASKS}
    r = Restorer(device="cpu", calibrated=False)
    r.cfg = RestoreConfig(min_exposure=1.8)
    for ev, want in ((-1.7, 0.0), (-2.3, 0.5 / 2.3), (3.6, 0.5)):
        applied, strength, reasons = r._decide({**quiet, "exposure_ev": ev}, every, grey=False)
        assert applied["exposure"] == (abs(ev) >= 1.8) and strength["exposure"] == pytest.approx(want)
    assert r._decide({**quiet, "exposure_ev": -2.3}, every, False, group=("exposure",))[1]["exposure"] == 1.0
    r.cfg = RestoreConfig(min_exposure=1.8, exposure_past_threshold=False)
    assert r._decide({**quiet, "exposure_ev": -2.3}, every, False)[1]["exposure"] == 1.0
    told = Restorer(device="cpu", calibrated=False, assume=("exposure",))
    told.cfg = RestoreConfig(min_exposure=1.8)
    assert told._decide({**quiet, "exposure_ev": -2.3}, every, False)[1]["exposure"] == 1.0


def test_an_estimate_can_leave_out_the_edge_reading_and_nothing_else(active_net):
    imgs = [photo_float(), photo_float(120, 160)]
    r = restorer(active_net)
    every, some = r.estimate(imgs), r.estimate(imgs, [False, True])
    assert np.isnan(some[0]["edge_blur"]) and np.isnan(some[0]["edge_anisotropy"])
    assert some[1] == every[1] and {k: v for k, v in some[0].items() if not k.startswith("edge_")} == \
        {k: v for k, v in every[0].items() if not k.startswith("edge_")}


def test_a_photo_with_nothing_to_repair_comes_back_exactly(active_net):
    img = photo_float()  # float: a round trip through the tone correction would show as 1e-7 differences
    res = restorer(active_net).restore([img, img], tasks={t: 0.0 for t in TASKS})
    assert all(np.array_equal(r.image, img) and not any(r.applied.values()) for r in res)


def test_restore_reads_its_outputs_in_the_same_call_as_estimate_would(active_net):
    """restore(after=True): the outputs that changed read as estimate() reads them (edges only where deblur ran,
    left out elsewhere), an unchanged one keeps its input's readings; one call where the job made two."""
    imgs = [(data.astronaut()[:96, :128]).copy(), (data.coffee()[:80, :96]).copy()]
    r = restorer(active_net)
    tasks = [{t: 1.0 for t in TASKS}, {t: 0.0 for t in TASKS}]  # the second: nothing applies
    for strengths in tasks:
        res = r.restore(imgs, strengths, after=True)
        plain = r.restore(imgs, strengths)
        assert all(x.estimates_after is None for x in plain)
        changed = [x for x in res if any(x.applied.values())]  # read together, as the job read them
        want = r.estimate([x.image for x in changed], [x.applied["deblur"] for x in changed]) if changed else []
        for x, w in zip(changed, want):
            assert x.estimates_after == {k: v for k, v in w.items() if not np.isnan(v)}
        for a, b in zip(res, plain):
            assert np.array_equal(a.image, b.image) and a.estimates == b.estimates
            if not any(a.applied.values()):
                assert a.estimates_after == a.estimates
    assert any(any(x.applied.values()) for x in r.restore(imgs, tasks[0], after=True))  # both branches ran
