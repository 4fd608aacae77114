"""Perturbations move the metrics the right way; drawing puts the skeleton where the joints are."""

import numpy as np
import pytest

from mpat_nb.data.perturb import Perturbation, perturb_video
from mpat_nb.data.synth import generate_clip
from mpat_nb.evaluate import evaluate
from mpat_nb.viz import draw_frame, draw_people, frame_grid, frame_strip, label_mask, pick_frames


@pytest.fixture(scope="module")
def clip():
    return generate_clip(preset="interaction", seed=11, num_frames=8, size=(160, 160))


def test_no_perturbation_is_perfect(clip):
    result = evaluate(clip.video, perturb_video(clip.video, Perturbation(), seed=0))
    assert result.total_map == pytest.approx(100.0)
    assert result.total_mota == pytest.approx(100.0)


def test_perturbation_is_deterministic_and_leaves_input_alone(clip):
    before = [p.keypoints.copy() for f in clip.video.frames for p in f.people]
    first = perturb_video(clip.video, Perturbation(jitter_px=3, miss_person_prob=0.2), seed=5)
    second = perturb_video(clip.video, Perturbation(jitter_px=3, miss_person_prob=0.2), seed=5)
    after = [p.keypoints for f in clip.video.frames for p in f.people]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    flat = lambda v: [p.keypoints for f in v.frames for p in f.people]  # noqa: E731
    assert all(np.array_equal(a, b) for a, b in zip(flat(first), flat(second)))


@pytest.mark.parametrize("field, values", [("jitter_px", (0.0, 4.0, 12.0)), ("miss_person_prob", (0.0, 0.3, 0.7))])
def test_map_falls_as_corruption_grows(clip, field, values):
    maps = [evaluate(clip.video, perturb_video(clip.video, Perturbation(**{field: v}), seed=1)).total_map for v in values]
    assert maps[0] > maps[1] > maps[2]


def test_id_switch_lowers_mota_but_not_map(clip):
    if len(clip.video.track_ids) < 2:
        pytest.skip("needs two tracks")
    result = evaluate(clip.video, perturb_video(clip.video, Perturbation(id_switches=2), seed=2))
    assert result.total_map == pytest.approx(100.0)
    assert result.total_mota < 100.0
    assert result.num_switches.sum() > 0


def test_draw_people_colours_pixels_at_joints_only_on_a_copy(clip):
    image, frame = clip.frames[0], clip.video.frames[0]
    drawn = draw_frame(image, frame)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert not np.array_equal(drawn, image)
    joint = next(p for p in frame.people if p.present.any())
    x, y = np.round(joint.keypoints[joint.present][0, :2]).astype(int)
    assert np.any(drawn[y, x] != image[y, x])
    empty = draw_people(image, [])
    np.testing.assert_array_equal(empty, image)


def test_strip_grid_and_mask_colours(clip):
    picks = pick_frames(len(clip.frames), 3)
    assert picks == [0, 4, 7]
    strip = frame_strip([clip.frames[t] for t in picks], labels=[str(t) for t in picks], gap=4)
    assert strip.shape[1] == 3 * 160 + 2 * 4
    grid = frame_grid([strip, strip[:, :100]])
    assert grid.shape[1] == strip.shape[1]
    coloured = label_mask(clip.instance_masks[0])
    assert coloured.shape == clip.frames[0].shape
    assert np.all(coloured[clip.instance_masks[0] == 0] == 0)
