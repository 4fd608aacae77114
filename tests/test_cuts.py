"""Shot cuts: the colour-histogram change, its threshold on generated clips, and the tracker leaving TIE out there."""

import dataclasses

import numpy as np
import pytest
from test_tracking import detection, perfect_fields

from mpat_nb.data.synth import generate_clip, split_seeds
from mpat_nb.tracking import EmbeddingTracker, FrameObservation, TrackerConfig
from mpat_nb.tracking.cuts import colour_histogram, frame_change


def test_frame_change_is_zero_for_the_same_colours_and_one_for_disjoint_colours():
    red = np.zeros((40, 60, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((30, 30, 3), np.uint8)
    blue[..., 2] = 255
    shuffled = red.copy()
    shuffled[:20], shuffled[20:] = red[20:], red[:20]
    assert colour_histogram(red).sum() == pytest.approx(1.0)
    assert frame_change(red, shuffled) == 0.0                        # where colours are does not matter
    assert frame_change(red, blue) == pytest.approx(1.0)             # nor does the frame size
    half = red.copy()
    half[:, :30] = [0, 0, 255]
    assert frame_change(red, half) == pytest.approx(0.5, abs=0.02)


def test_frame_change_refuses_what_is_not_an_rgb_frame():
    with pytest.raises(ValueError, match="uint8 RGB"):
        frame_change(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        frame_change(np.zeros((0, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize("preset", ["shot_change", "camera_motion", "motion_blur"])
def test_the_default_threshold_finds_exactly_the_generated_cuts(preset):
    """Validation-seed clips (the threshold was measured on training seeds): cuts above it, every other frame below."""
    threshold = TrackerConfig().cut_threshold
    for seed in split_seeds("val", 2):
        clip = generate_clip(preset, seed=int(seed), num_frames=20, size=(128, 128))
        found = [t for t in range(1, len(clip)) if frame_change(clip.frames[t - 1], clip.frames[t]) > threshold]
        assert found == clip.events["shot_cuts"]
    assert preset != "shot_change" or clip.events["shot_cuts"]


def _two_frames(change):
    """Two people that swap places between frames, a TIE field that says they did not (perfect for the wrong
    pairs), HE that knows who is who; frame 1's change from frame 0 is ``change``."""
    first = [detection(8, 16, identity=0), detection(24, 16, identity=1)]
    second = [detection(24, 16, identity=0), detection(8, 16, identity=1)]
    fields = perfect_fields(first, second, [(0, 1), (1, 0)])          # TIE: 0 -> the person now at (8, 16)
    return (FrameObservation(0, first), FrameObservation(1, second, *fields, frame_change=change))


def test_across_a_cut_the_tracker_trusts_appearance_alone():
    config = TrackerConfig(weight_tie=10.0)                           # TIE dominates C within a shot
    first, second = _two_frames(change=0.1)
    tracker = EmbeddingTracker(config)
    ids = tracker.step(first)
    assert tracker.step(second).tolist() == ids[::-1].tolist()        # within a shot, TIE wins (wrongly here)
    assert tracker.last_costs["cut"] is False
    first, second = _two_frames(change=0.9)
    tracker.reset()
    ids = tracker.step(first)
    assert tracker.step(second).tolist() == ids.tolist()              # at a cut, HE alone: identities kept
    assert tracker.last_costs["cut"] is True and "tie" in tracker.last_costs   # d_TIE still shown, not used
    np.testing.assert_allclose(tracker.last_costs["combined"], tracker.last_costs["he"] / config.tau_he)
    never = EmbeddingTracker(dataclasses.replace(config, cut_threshold=None))
    ids = never.step(first)
    assert never.step(second).tolist() == ids[::-1].tolist()          # cut detection off: as within a shot


def test_tie_only_matches_nobody_across_a_cut():
    first, second = _two_frames(change=0.9)
    tracker = EmbeddingTracker(TrackerConfig(use_he=False))
    ids = tracker.step(first)
    assert set(tracker.step(second).tolist()).isdisjoint(ids.tolist())


def test_cut_threshold_must_be_a_change_or_none():
    for bad in (0.0, 1.0, -0.2):
        with pytest.raises(ValueError, match="cut_threshold"):
            TrackerConfig(cut_threshold=bad)


def test_calibration_puts_the_threshold_between_shots_and_cuts():
    from mpat_nb.tracking.calibrate import calibrate_cut_threshold
    from mpat_nb.tracking.evaluation import ObservedClip

    def observed(changes, cuts):
        frames = [FrameObservation(t, [], frame_change=c) for t, c in enumerate(changes)]
        return ObservedClip("shot_change", 0, None, None, {"predicted": frames}, {"shot_cuts": cuts})

    found = calibrate_cut_threshold([observed([0.0, 0.1, 0.7, 0.05], [2]), observed([0.0, 0.2, 0.1], [])])
    assert (found["within_max"], found["cut_min"], found["cuts"]) == (0.2, 0.7, 1.0)
    assert found["threshold"] == pytest.approx(0.45)
    with pytest.raises(ValueError, match="does not separate"):
        calibrate_cut_threshold([observed([0.0, 0.5, 0.3], [2])])
