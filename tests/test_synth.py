"""The synthetic generator: determinism, ground-truth consistency, and that every hard case is real."""

from __future__ import annotations

import json
import random
from functools import lru_cache

import numpy as np
import pytest

from mpat_nb.data.synth import (
    HARD_CASES,
    PRESETS,
    SynthConfig,
    SyntheticVideoSource,
    generate_clip,
    iter_frames,
    split_seeds,
)
from mpat_nb.skeleton import JOINT_TO_SLOT17
from mpat_nb.utils import InputError

SIZE = (128, 128)
FRAMES = 10


@lru_cache(maxsize=None)
def clip_of(preset: str, seed: int = 0, num_frames: int = FRAMES, size: tuple[int, int] = SIZE, **overrides):
    """Clips are cached per argument set: several tests read the same clip."""
    return generate_clip(preset, seed=seed, num_frames=num_frames, size=size, **overrides)


def annotation_arrays(clip) -> list[np.ndarray]:
    arrays = []
    for frame in clip.video.frames:
        for p in frame.people:
            arrays += [np.array([p.track_id]), p.keypoints, p.keypoints_all, p.bbox, p.bbox_head, p.centre]
    return arrays


def visible_inside(points: np.ndarray, width: int, height: int) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    return (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)


def pixel(point) -> tuple[int, int]:
    return int(np.floor(point[1] + 0.5)), int(np.floor(point[0] + 0.5))


# ----------------------------------------------------------------------------------------------
# Determinism
# ----------------------------------------------------------------------------------------------
def test_same_arguments_give_identical_clips_whatever_the_global_rng():
    first = generate_clip("mixed", seed=11, num_frames=6, size=SIZE)
    np.random.seed(123)
    np.random.random(1000)
    random.seed(5)
    second = generate_clip("mixed", seed=11, num_frames=6, size=SIZE)
    assert first.frames.tobytes() == second.frames.tobytes()
    assert first.instance_masks.tobytes() == second.instance_masks.tobytes()
    a, b = annotation_arrays(first), annotation_arrays(second)
    assert len(a) == len(b) > 0
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert first.events == second.events


def test_different_seeds_differ():
    a, b = clip_of("easy", seed=0), clip_of("easy", seed=1)
    assert not np.array_equal(a.frames, b.frames)
    assert a.video.name != b.video.name


def test_streaming_and_random_access_match_the_whole_clip():
    clip = clip_of("camera_motion", seed=3)
    source = SyntheticVideoSource("camera_motion", seed=3, num_frames=FRAMES, size=SIZE)
    for t in (FRAMES - 1, 0, 4):   # any order: frame t is a pure function of (arguments, t)
        rendered = source[t]
        np.testing.assert_array_equal(rendered.image, clip.frames[t])
        np.testing.assert_array_equal(rendered.instance_mask, clip.instance_masks[t])
    streamed = list(iter_frames("camera_motion", seed=3, num_frames=FRAMES, size=SIZE))
    assert [s.frame.file_name for s in streamed] == [f.file_name for f in clip.video.frames]
    np.testing.assert_array_equal(np.stack([s.image for s in streamed]), clip.frames)


# ----------------------------------------------------------------------------------------------
# Every preset: shapes, names, and ground truth that agrees with the pixels
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_shapes_names_and_ground_truth(preset):
    clip = clip_of(preset, seed=2)
    width, height = SIZE
    assert clip.frames.shape == (FRAMES, height, width, 3) and clip.frames.dtype == np.uint8
    assert clip.instance_masks.shape == (FRAMES, height, width) and clip.instance_masks.dtype == np.int16
    assert clip.video.name == f"000002_mpii_synth_{preset}"
    assert clip.depths.shape[0] == FRAMES
    num_identities = clip.depths.shape[1]
    listed = 0
    for t, frame in enumerate(clip.video.frames):
        assert frame.file_name == f"images/{clip.video.name}/{t:06d}.jpg"
        assert frame.image_id == 2 * 10000 + t and (frame.width, frame.height) == SIZE and frame.is_labeled
        mask = clip.instance_masks[t]
        ids = [p.track_id for p in frame.people]
        assert ids == sorted(set(ids)) and all(0 <= i < num_identities for i in ids)
        assert set(np.unique(mask)) <= {0} | {i + 1 for i in range(num_identities)}
        for p in frame.people:
            listed += 1
            keypoints, everything = p.keypoints, p.keypoints_all
            assert np.all(keypoints[3:5] == 0) and np.all(everything[3:5] == 0)          # ears never annotated
            assert set(np.unique(keypoints[:, 2])) <= {0.0, 2.0}
            assert set(np.unique(everything[JOINT_TO_SLOT17, 2])) <= {1.0, 2.0}
            visible = keypoints[:, 2] == 2
            assert visible.any()
            # keypoints = the visible subset of keypoints_all
            np.testing.assert_array_equal(keypoints[visible], everything[visible])
            assert np.all(keypoints[~visible] == 0) and np.all(everything[visible, 2] == 2)
            # visible joints lie on the person's own pixels; hidden ones inside the image do not
            for j in JOINT_TO_SLOT17:
                x, y, v = everything[j]
                if v == 2:
                    assert mask[pixel((x, y))] == p.track_id + 1
                elif visible_inside(everything[j:j + 1, :2], width, height)[0]:
                    assert mask[pixel((x, y))] != p.track_id + 1
            # boxes and centre
            x0, y0, w, h = p.bbox
            assert 0 <= x0 and 0 <= y0 and x0 + w <= width and y0 + h <= height and w > 0 and h > 0
            hx, hy, hw, hh = p.bbox_head
            for j in (0, 1, 2):   # nose, head_bottom, head_top inside the head box
                assert hx - 0.5 <= everything[j, 0] <= hx + hw + 0.5 and hy - 0.5 <= everything[j, 1] <= hy + hh + 0.5
            np.testing.assert_allclose(p.centre, everything[JOINT_TO_SLOT17, :2].mean(axis=0))
            if visible_inside(p.centre[None], width, height)[0]:
                assert x0 - 1 <= p.centre[0] <= x0 + w + 1 and y0 - 1 <= p.centre[1] <= y0 + h + 1
            # the head box is head-sized: 0.6 x diagonal within 40-110 % of the head_top - head_bottom distance
            head_size = 0.6 * np.hypot(hw, hh)
            head_height = np.linalg.norm(everything[2, :2] - everything[1, :2])
            assert 0.4 * head_height <= head_size <= 1.1 * head_height + 1
    assert listed > 0


def test_an_unoccluded_person_has_every_joint_inside_the_image_visible():
    for seed in range(4):
        clip = clip_of("easy", seed=seed, size=(64, 64), num_people=1, num_occluders=0)
        for frame in clip.video.frames:
            for p in frame.people:
                inside = visible_inside(p.keypoints_all[JOINT_TO_SLOT17, :2], 64, 64)
                assert np.all(p.keypoints_all[JOINT_TO_SLOT17][inside, 2] == 2)


def test_track_ids_and_appearance_are_stable():
    """Each person's mean colour (over its mask) identifies it in every frame, across a cut too."""
    for preset in ("easy", "shot_change"):
        clip = clip_of(preset, seed=4, num_frames=16, size=(160, 160), sensor_effects=False, num_people=(3, 3))
        samples = []   # (track id, mean RGB of its visible pixels)
        for frame, mask in zip(clip.frames, clip.instance_masks):
            for track_id in np.unique(mask[mask > 0]) - 1:
                pixels = frame[mask == track_id + 1]
                if len(pixels) >= 40:
                    samples.append((int(track_id), pixels.reshape(-1, 3).mean(axis=0)))
        tracks = sorted({t for t, _ in samples})
        assert len(tracks) >= 2
        means = {t: np.mean([c for s, c in samples if s == t], axis=0) for t in tracks}
        nearest = [min(tracks, key=lambda t: np.linalg.norm(colour - means[t])) == track for track, colour in samples]
        assert np.mean(nearest) >= 0.85, preset


# ----------------------------------------------------------------------------------------------
# The hard cases are really there
# ----------------------------------------------------------------------------------------------
def test_occlusion_hides_joints_and_a_person_vanishes_and_reappears():
    for seed in range(3):
        clip = clip_of("occlusion", seed=seed, num_frames=24)
        hidden = sum(int(np.sum(p.keypoints_all[JOINT_TO_SLOT17, 2] == 1)) for f in clip.video.frames for p in f.people)
        assert hidden > 0
        assert clip.events["scripted_occlusions"], "the occlusion preset scripts a disappearance"
        event = clip.events["scripted_occlusions"][0]
        listed = [{p.track_id for p in f.people} for f in clip.video.frames]
        track = event["track_id"]
        assert all(track not in listed[t] for t in range(event["hidden_from"], event["hidden_until"]))
        assert any(track in listed[t] for t in range(event["hidden_from"]))
        assert any(track in listed[t] for t in range(event["hidden_until"], 24))
        assert any(e[0] == track for e in clip.events["full_occlusions"])


def test_shot_change_cuts_and_keeps_identities():
    clip = clip_of("shot_change", seed=1, num_frames=12, sensor_effects=False)
    (cut,) = clip.events["shot_cuts"]
    difference = np.abs(np.diff(clip.frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))   # [t] = |f(t+1) - f(t)|
    others = np.delete(difference, cut - 1)
    assert difference[cut - 1] > 3 * np.median(others) + 5
    before = {p.track_id for f in clip.video.frames[:cut] for p in f.people}
    after = {p.track_id for f in clip.video.frames[cut:] for p in f.people}
    stayed = before - set(clip.events["shot_leave"][cut])
    assert after & stayed, "people who stay keep their track ids"
    assert set(clip.events["shot_enter"][cut]) <= set(range(clip.depths.shape[1]))
    assert not before & set(clip.events["shot_enter"][cut])


def test_camera_motion_moves_the_background():
    def background_change(preset: str) -> float:
        clip = clip_of(preset, seed=6, sensor_effects=False)
        empty = (clip.instance_masks[0] == 0) & (clip.instance_masks[-1] == 0)
        return float(np.abs(clip.frames[0].astype(np.int16) - clip.frames[-1])[empty].mean())

    assert background_change("easy") < 3.0   # static camera, no noise: only occluders/blur could change
    assert background_change("camera_motion") > 8.0


def mean_joint_displacement(preset: str) -> float:
    steps = []
    for seed in range(3):
        clip = clip_of(preset, seed=seed, num_frames=8, num_people=(3, 3))
        for earlier, later in zip(clip.video.frames[:-1], clip.video.frames[1:]):
            previous = {p.track_id: p.keypoints_all[JOINT_TO_SLOT17, :2] for p in earlier.people}
            for p in later.people:
                if p.track_id in previous:
                    moved = p.keypoints_all[JOINT_TO_SLOT17, :2] - previous[p.track_id]
                    steps.append(np.linalg.norm(moved, axis=1).mean())
    return float(np.mean(steps))


def test_fast_motion_moves_more_than_easy():
    assert mean_joint_displacement("fast_motion") > 2 * mean_joint_displacement("easy")


def test_crowd_has_more_people_than_easy():
    def people_per_frame(preset):
        return np.mean([len(f.people) for seed in range(2) for f in clip_of(preset, seed=seed).video.frames])

    assert people_per_frame("crowd") > 2 * people_per_frame("easy")


def test_far_people_are_smaller():
    heights, inverse_depths = [], []
    for seed in range(3):
        clip = clip_of("crowd", seed=seed, num_frames=4, size=(192, 192), child_fraction=0.0)
        for t, frame in enumerate(clip.video.frames):
            for p in frame.people:
                heights.append(np.linalg.norm(p.keypoints_all[2, :2] - p.keypoints_all[1, :2]))   # head length
                inverse_depths.append(1.0 / clip.depths[t, p.track_id])
    assert np.corrcoef(heights, inverse_depths)[0, 1] > 0.9


def test_motion_blur_smears_moving_people():
    sharp = clip_of("motion_blur", seed=0, sensor_effects=False, motion_blur=0.0)
    blurred = clip_of("motion_blur", seed=0, sensor_effects=False)
    # Same scene, same masks; the blurred frames have weaker gradients.
    np.testing.assert_array_equal(sharp.instance_masks, blurred.instance_masks)
    def sharpness(frames):
        return np.abs(np.diff(frames.astype(np.int16), axis=2)).mean()
    assert sharpness(blurred.frames) < 0.9 * sharpness(sharp.frames)


def test_mixed_switches_hard_cases_on_per_clip():
    chosen = [tuple(clip_of("mixed", seed=seed, num_frames=2).events["hard_cases"]) for seed in range(8)]
    assert len(set(chosen)) > 2
    assert set().union(*chosen) <= set(HARD_CASES)


# ----------------------------------------------------------------------------------------------
# Sizes, arguments, seeds
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(96, 64), (64, 112), (64, 64), (40, 32)])
def test_non_square_and_tiny_sizes(size):
    clip = generate_clip("mixed", seed=3, num_frames=3, size=size)
    assert clip.frames.shape == (3, size[1], size[0], 3)
    assert clip.instance_masks.shape == (3, size[1], size[0])
    for frame in clip.video.frames:
        assert (frame.width, frame.height) == size


@pytest.mark.parametrize("kwargs, words", [
    (dict(preset="nope"), ["unknown preset", "mixed", "crowd"]),
    (dict(size=(0, 128)), ["size"]),
    (dict(size=(128,)), ["size"]),
    (dict(size=(16, 16)), ["at least"]),
    (dict(num_frames=0), ["num_frames"]),
    (dict(seed=-1), ["seed"]),
    (dict(wings=2), ["unknown SynthConfig knob", "num_people"]),
    (dict(num_people=(3, 1)), ["num_people"]),
    (dict(fps=0.0), ["fps"]),
])
def test_bad_arguments_raise_input_error(kwargs, words):
    arguments = dict(preset="easy", seed=0, num_frames=2, size=(64, 64)) | kwargs
    with pytest.raises(InputError) as error:
        generate_clip(**arguments)
    assert all(word in str(error.value) for word in words)


def test_overrides_and_custom_configs():
    clip = clip_of("easy", seed=0, num_frames=2, num_people=(5, 5), num_occluders=0)
    assert clip.config.num_people == (5, 5) and clip.depths.shape[1] == 5
    custom = SynthConfig(num_people=(1, 1), num_occluders=(0, 0))
    assert generate_clip("easy", seed=0, num_frames=2, size=(64, 64), config=custom).depths.shape[1] == 1


def test_split_seeds_are_disjoint():
    train, val, test = split_seeds("train", 1000), split_seeds("val", 1000), split_seeds("test", 1000)
    assert train[0] == 0 and val[0] == 900_000 and test[0] == 950_000
    assert not (set(train) & set(val)) and not (set(val) & set(test))
    assert split_seeds("val", 3, offset=10).tolist() == [900_010, 900_011, 900_012]
    with pytest.raises(InputError):
        split_seeds("holdout", 1)
    with pytest.raises(InputError):
        split_seeds("val", 60_000)


# ----------------------------------------------------------------------------------------------
# Saving (needs mpat_nb.data.formats)
# ----------------------------------------------------------------------------------------------
def test_save_writes_frames_and_reloadable_annotations(tmp_path):
    formats = pytest.importorskip("mpat_nb.data.formats")
    if not hasattr(formats, "save_posetrack18") or not hasattr(formats, "write_frames"):
        pytest.skip("mpat_nb.data.formats has no save_posetrack18 / write_frames yet")
    clip = generate_clip("occlusion", seed=1, num_frames=3, size=(96, 80))
    path = clip.save(tmp_path)
    assert path == tmp_path / "annotations" / f"{clip.video.name}.json"
    for t in range(3):
        assert (tmp_path / "images" / clip.video.name / f"{t:06d}.jpg").is_file()
    json.loads(path.read_text())   # valid JSON
    reloaded = formats.load_posetrack18(path)
    assert reloaded.name == clip.video.name and len(reloaded.frames) == 3
    for original, frame in zip(clip.video.frames, reloaded.frames):
        assert [p.track_id for p in frame.people] == [p.track_id for p in original.people]
        for a, b in zip(original.people, frame.people):
            np.testing.assert_allclose(b.keypoints, a.keypoints, atol=1e-2)
