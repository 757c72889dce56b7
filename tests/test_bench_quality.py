"""bench/quality.py: its metrics on alphas whose answer is known, its committed set, and one real run."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from bench import quality
from cutouts.remover import REFINEMENTS

SIZE = 100


def step(column: int) -> np.ndarray:
    """Opaque left of `column`, transparent from it on."""
    alpha = np.zeros((SIZE, SIZE))
    alpha[:, :column] = 1.0
    return alpha


def disc(radius: float, centre=(50, 50), size=SIZE) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return ((y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2).astype(np.float64)


def test_identical_alphas_have_no_error():
    truth = disc(30)
    truth[20:80, 79] = 0.5  # A soft column, so that the band is not empty.
    colours = np.random.default_rng(1).uniform(0, 255, (SIZE, SIZE, 3))
    assert quality.sad(truth, truth) == 0
    assert quality.mse(truth, truth) == 0
    assert quality.gradient_error(truth, truth) == 0
    assert quality.iou(truth, truth) == 1
    assert quality.colour_error(colours, truth, colours, truth, quality.edge_band(truth)) == 0
    assert quality.far_alpha(truth, truth) == (0.0, 0)
    assert quality.bbox_iou(truth, truth) == 1


def test_an_edge_three_columns_out():
    truth, ours = step(50), step(53)
    assert quality.sad(ours, truth) == pytest.approx(3 * SIZE / 1000)  # 300 pixels wrong by 1.
    assert quality.mse(ours, truth) == pytest.approx(300 / SIZE**2)
    assert quality.iou(ours, truth) == pytest.approx(50 / 53)
    assert quality.bbox_iou(ours, truth) == pytest.approx(50 / 53)
    assert quality.far_alpha(ours, truth) == (0.0, 0)  # 3 px out is not far.


def test_inverted_alpha_has_no_overlap():
    truth = disc(30)
    assert quality.iou(1.0 - truth, truth) == 0
    assert quality.sad(1.0 - truth, truth) == pytest.approx(SIZE * SIZE / 1000)


def test_gradient_filter_is_the_composition_1k_one():
    kernel = quality._gaussian_gradient_kernel(1.4)
    # halfsize = ceil(σ·sqrt(−2·ln(sqrt(2π)·σ·0.01))) = 4 for σ = 1.4; unit L2 norm; odd in x.
    assert kernel.shape == (9, 9)
    assert np.sum(kernel**2) == pytest.approx(1.0)
    assert np.allclose(kernel, -kernel[:, ::-1])
    # A ramp's gradient is the same everywhere inside, and twice as steep for twice the slope.
    ramp = np.tile(np.arange(SIZE) / SIZE, (SIZE, 1))
    inner = quality.gradient_magnitude(ramp)[10:-10, 10:-10]
    assert np.ptp(inner) < 1e-9 and inner.mean() > 0
    assert quality.gradient_magnitude(2 * ramp)[10:-10, 10:-10].mean() == pytest.approx(2 * inner.mean())


def test_gradient_error_of_edges_apart_adds_up():
    # Two steps far enough apart that their gradients do not overlap: each edge's squared
    # gradient counts once, the same at any such distance.
    flat = np.zeros((SIZE, SIZE))
    one_edge = quality.gradient_error(step(30), flat)
    assert one_edge > 0
    assert quality.gradient_error(step(30), step(50)) == pytest.approx(2 * one_edge)
    assert quality.gradient_error(step(30), step(70)) == pytest.approx(2 * one_edge)
    assert quality.gradient_error(step(30), step(31)) < 2 * one_edge


def test_edge_band_is_the_soft_pixels_dilated_by_three():
    truth = step(50)
    truth[:, 50] = 0.5
    band = quality.edge_band(truth)
    assert band.sum() == SIZE * 7  # Columns 47–53.
    assert band[:, 47:54].all()
    assert not quality.edge_band(step(50)).any()  # No soft pixel, no band.


def test_colour_error_is_measured_over_white():
    truth = np.full((SIZE, SIZE), 0.5)
    colours = np.full((SIZE, SIZE, 3), 100.0)
    # Right alpha, colours 20 off: half of it shows over white.
    assert quality.colour_error(colours + 20, truth, colours, truth) == pytest.approx(10)
    # Right colours, alpha 1 instead of 0.5: over white, 100 instead of 177.5.
    assert quality.colour_error(colours, np.ones_like(truth), colours, truth) == pytest.approx(77.5)


def test_far_alpha_counts_stray_pixels():
    truth = disc(20)
    ours = truth.copy()
    ours[95, 95] = 1.0  # Far from the disc.
    ours[50, 71] = 1.0  # One pixel outside the disc's edge, not far.
    share, pixels = quality.far_alpha(ours, truth)
    assert pixels == 1
    assert share == pytest.approx(1 / ours.sum())
    # trim=alpha would keep the stray pixel: the box grows from 41×41 to 66×66 (30..95).
    assert quality.bbox_iou(ours, truth) == pytest.approx(41 * 41 / (66 * 66))


def test_composite_is_the_true_foreground_over_the_background():
    truth = {"alpha": np.array([[0.0, 0.5, 1.0]]), "colours": np.full((1, 3, 3), 200.0)}
    photo = np.asarray(quality.composite(truth, np.full((1, 3, 3), 100.0)))
    assert photo[0, :, 0].tolist() == [100, 150, 200]


@pytest.fixture(scope="module")
def manifest():
    return quality.manifest_load()


def test_every_foreground_is_there_with_its_licence(manifest):
    licence = (quality.SET / "LICENSE.md").read_text()
    for entry in manifest["foregrounds"]:
        with Image.open(quality.SET / entry["file"]) as image:
            assert image.mode == "RGBA" and list(image.size) == entry["size"] and max(image.size) <= 640
            alpha = np.asarray(image.getchannel("A"))
        assert ((alpha > 0) & (alpha < 255)).sum() > 100, f"{entry['name']} has no soft edge"
        assert entry["licence"] and entry["credit"] and entry["source"] and entry["kind"]
        assert f"`{entry['file']}`" in licence
    for background in manifest["busy"]["test"] + manifest["busy"]["tune"]:
        assert (quality.SET / background["file"]).is_file()


def test_splits_are_disjoint_and_not_empty(manifest):
    names = {split: {e["name"] for e in manifest["foregrounds"] if e["split"] == split} for split in quality.SPLITS}
    assert all(names.values())
    assert not names["test"] & names["tune"]
    assert {e["split"] for e in manifest["foregrounds"]} == set(quality.SPLITS)
    # The test split's busy backgrounds are not the ones the tune split (and int8's calibration) uses.
    files = {split: {background["file"] for background in manifest["busy"][split]} for split in quality.SPLITS}
    assert not files["test"] & files["tune"]


def test_subjects_do_not_touch_the_frame(manifest):
    for entry in manifest["foregrounds"]:
        alpha = quality.truth_make(entry)["alpha"]
        left, top, right, bottom = quality.bbox(alpha)
        margin = math.ceil(quality.MARGIN * max(entry["size"]))
        assert min(left, top) >= margin
        assert alpha.shape[1] - right >= margin and alpha.shape[0] - bottom >= margin


def test_one_real_run_gives_finite_numbers_for_every_refinement(tmp_path, capsys):
    out = tmp_path / "quality.json"
    quality.main(["--models", "u2netp", "--limit", "1", "--backgrounds", "busy", "--json", str(out)])
    report = json.loads(out.read_text())
    assert [s["refinement"] for s in report["summary"]] == list(REFINEMENTS)
    for summary in report["summary"]:
        assert summary["n"] == 1 and summary["model"] == "u2netp" and summary["split"] == "test"
        for metric in quality.METRICS:
            assert math.isfinite(summary[metric]), metric
        assert 0.5 < summary["iou"] <= 1 and summary["cpu"] > 0
    assert "| test | u2netp | none | 1 |" in capsys.readouterr().out
