"""Tests of the failure-case finder (mpat_nb.failures) on hand-made clips whose answers are known."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.failures import (
    CATEGORIES,
    draw_case,
    hidden_fraction,
    normalised_pose,
    person_height,
    pose_rarity,
    score_people,
    worst_cases,
)
from mpat_nb.skeleton import NUM_JOINTS, joints_to_slots17
from mpat_nb.utils import InputError

K = NUM_JOINTS


def make_person(track_id: int, x0: float, y0: float, step: float = 4.0, score: float | None = None) -> Person:
    """All 15 joints on a diagonal line from (x0, y0), 'step' px apart in x and y; head box 30 x 40 -> head
    size 30 px, PCKh threshold 15 px."""
    joints = np.zeros((K, 3))
    joints[:, 0] = x0 + step * np.arange(K)
    joints[:, 1] = y0 + step * np.arange(K)
    joints[:, 2] = 2
    scores = None if score is None else np.full(17, score)
    return Person(joints_to_slots17(joints), track_id=track_id, scores=scores, bbox_head=[x0, y0, 30.0, 40.0])


def clip(people_per_frame, name="000001_mpii_test") -> Video:
    return Video(name, [Frame(f"{name}/{t:06d}.jpg", t, 200, 200, people=people)
                        for t, people in enumerate(people_per_frame)])


def gt_clip(num_frames=3) -> Video:
    """Two GT people far apart: A (id 0) at (10, 10), B (id 1) at (120, 10)."""
    return clip([[make_person(0, 10, 10), make_person(1, 120, 10)] for _ in range(num_frames)])


def as_prediction(video: Video, ids_per_frame) -> Video:
    """The GT poses with the given predicted track ids per frame (None: drop that person)."""
    frames = []
    for frame, ids in zip(video.frames, ids_per_frame):
        people = []
        for person, new_id in zip(frame.people, ids):
            if new_id is not None:
                person = copy.deepcopy(person)
                person.track_id, person.scores = new_id, np.full(17, 0.9)
                people.append(person)
        frames.append(Frame(frame.file_name, frame.image_id, frame.width, frame.height, people=people))
    return Video(video.name, frames)


def by_key(cases):
    return {(c.frame, c.track_id): c for c in cases}


def test_perfect_prediction_finds_everyone_without_switches():
    gt = gt_clip()
    cases = score_people(gt, as_prediction(gt, [[5, 7]] * 3), group="easy")
    assert len(cases) == 6 and all(c.pck == 1.0 and not c.id_switch and c.group == "easy" for c in cases)
    assert [c.predicted_id for c in cases] == [5, 7] * 3
    assert by_key(cases)[(2, 1)].previous_id == 7 and by_key(cases)[(2, 1)].previous_frame == 1


def test_swapped_ids_are_switches_for_both_identities_once():
    gt = gt_clip()
    cases = by_key(score_people(gt, as_prediction(gt, [[0, 1], [1, 0], [1, 0]])))
    switches = sorted(key for key, c in cases.items() if c.id_switch)
    assert switches == [(1, 0), (1, 1)]                       # frame 2 keeps the new ids: no second switch
    assert (cases[(1, 0)].previous_id, cases[(1, 0)].predicted_id) == (0, 1)


def test_missed_person_has_zero_pck_and_no_switch_when_found_again_with_its_id():
    gt = gt_clip()
    cases = by_key(score_people(gt, as_prediction(gt, [[0, 1], [0, None], [0, 1]])))
    assert cases[(1, 1)].pck == 0.0 and cases[(1, 1)].predicted_id == -1
    assert cases[(2, 1)].previous_frame == 0 and not cases[(2, 1)].id_switch
    cases = by_key(score_people(gt, as_prediction(gt, [[0, 1], [0, None], [0, 9]])))
    assert cases[(2, 1)].id_switch and cases[(2, 1)].previous_id == 1       # switch across the gap


def test_pck_counts_joints_within_half_a_head_size():
    gt = gt_clip(1)
    pred = as_prediction(gt, [[0, 1]])
    joints = pred.frames[0].people[0].joints.copy()
    joints[:, 0] += 15.0                                                     # every joint 15 px off ...
    joints[:4, 0] += 0.01                                                    # ... and 4 of them just beyond
    pred.frames[0].people[0].keypoints = joints_to_slots17(joints)
    cases = by_key(score_people(gt, pred))
    assert cases[(0, 0)].pck == pytest.approx((K - 4) / K)                   # 15.00 px is a hit, 15.01 is not
    assert cases[(0, 1)].pck == 1.0


def test_unlabelled_frames_are_skipped_and_short_predictions_rejected():
    gt = gt_clip(3)
    gt.frames[1].people = []
    cases = score_people(gt, as_prediction(gt, [[0, 1], [], [0, 1]]))
    assert sorted({c.frame for c in cases}) == [0, 2]
    with pytest.raises(InputError, match="paired by position"):
        score_people(gt, Video(gt.name, gt.frames[:2]))
    gt.frames[0].people[0].bbox_head = None
    with pytest.raises(InputError, match="bbox_head"):
        score_people(gt, as_prediction(gt, [[0, 1], [], [0, 1]]))


def test_normalised_pose_is_translation_and_scale_free():
    rng = np.random.default_rng(0)
    joints = np.concatenate([rng.normal(size=(K, 2)) * 30 + 100, np.full((K, 1), 2.0)], axis=1)
    joints[3, 2] = 0
    pose = normalised_pose(joints)
    moved = joints.copy()
    moved[:, :2] = 3.0 * moved[:, :2] + [40.0, -7.0]
    np.testing.assert_allclose(normalised_pose(moved), pose, atol=1e-12)
    assert np.isnan(pose[3]).all() and not np.isnan(np.delete(pose, 3, axis=0)).any()
    kept = np.delete(pose, 3, axis=0)
    np.testing.assert_allclose(kept.mean(axis=0), 0.0, atol=1e-12)
    assert np.sqrt((kept ** 2).sum(axis=1).mean()) == pytest.approx(1.0)
    assert np.isnan(normalised_pose(np.zeros((K, 3)))).all()


def test_pose_rarity_singles_out_the_odd_pose():
    line = normalised_pose(make_person(0, 0, 0).joints)
    bent = normalised_pose(np.concatenate([np.stack([np.arange(K), (np.arange(K) % 2) * 9.0], 1),
                                           np.full((K, 1), 2.0)], 1))
    rarity = pose_rarity(np.stack([line, line, line, bent]))
    assert np.argmax(rarity) == 3 and rarity[0] == pytest.approx(rarity[2])
    np.testing.assert_allclose(pose_rarity(np.stack([line, line])), 0.0, atol=1e-12)
    assert np.isnan(pose_rarity(np.stack([line, np.full((K, 2), np.nan)]))[1])


def test_height_and_hidden_fraction():
    person = make_person(0, 10, 10, step=4.0)
    frame = Frame("f.jpg", 0, 100, 100, people=[person])
    assert person_height(person) == pytest.approx(4.0 * (K - 1))
    assert np.isnan(hidden_fraction(person, frame))
    every = person.joints.copy()
    every[:5, 2] = 1                                          # 5 joints not visible ...
    every[:2, :2] = [-20.0, 50.0]                             # ... 2 of them outside the image
    person.keypoints_all = joints_to_slots17(every)
    person.keypoints = joints_to_slots17(np.where(every[:, 2:] == 1, 0.0, every))
    assert hidden_fraction(person, frame) == pytest.approx(3 / K)
    assert person_height(person) == pytest.approx(np.ptp(every[:, 1]))   # the whole body, hidden joints too


def test_worst_cases_ranks_filters_and_keeps_one_case_per_identity():
    small, large = make_person(0, 10, 10, step=1.0), make_person(1, 120, 10, step=5.0)
    gt = clip([[small, large]] * 2)
    missed = as_prediction(gt, [[None, None]] * 2)            # nobody found: every person is a failure
    cases = score_people(gt, missed, group="occlusion")
    assert [c.track_id for c in worst_cases(cases, "small people")] == [0, 1]   # smallest first, once each
    assert worst_cases(cases, "motion blur") == []            # no motion_blur clip among the groups
    assert len(worst_cases(cases, "motion blur", groups=("occlusion",))) == 2
    assert worst_cases(score_people(gt, as_prediction(gt, [[0, 1]] * 2)), "small people") == []  # all found
    assert cases[0].visible == K
    cases[0].visible = 4                                      # (almost) out of the picture: nothing to show
    assert [c.track_id for c in worst_cases(cases, "small people")] == [0, 1]   # its frame-1 twin stays
    assert [c.track_id for c in worst_cases(cases[:2], "small people")] == [1]
    assert len(worst_cases(cases[:2], "small people", min_visible=4)) == 2
    swapped = score_people(gt, as_prediction(gt, [[0, 1], [1, 0]]))
    drift = worst_cases(swapped, "id drift")
    assert [(c.frame, c.track_id) for c in drift] == [(1, 1), (1, 0)]          # largest person first
    with pytest.raises(InputError, match="unknown failure category"):
        worst_cases(cases, "bad lighting")
    assert set(CATEGORIES) == {"motion blur", "rare poses", "heavy occlusion", "small people", "id drift"}


def test_rare_poses_and_heavy_occlusion_order():
    people = [make_person(i, 10 + 30 * i, 10) for i in range(3)]
    odd = copy.deepcopy(people[2])
    joints = odd.joints.copy()
    joints[:7, 1] = joints[7, 1]                              # a bent pose: half of the joints on one row
    odd.keypoints = joints_to_slots17(joints)
    hidden = copy.deepcopy(people[1])
    every = hidden.joints.copy()
    every[:6, 2] = 1
    hidden.keypoints_all = joints_to_slots17(every)
    hidden.keypoints = joints_to_slots17(np.where(every[:, 2:] == 1, 0.0, every))
    gt = clip([[people[0], hidden, odd]])
    cases = score_people(gt, as_prediction(gt, [[None, None, None]]), group="crowd")
    assert worst_cases(cases, "rare poses", count=1)[0].track_id == 2
    assert worst_cases(cases, "heavy occlusion", count=1)[0].track_id == 1


def test_draw_case_returns_a_picture_of_each_layout():
    gt = gt_clip()
    images = np.zeros((3, 200, 200, 3), np.uint8)
    cases = by_key(score_people(gt, pred := as_prediction(gt, [[0, 1], [1, 0], [1, 0]])))
    for case, category, tiles in [(cases[(0, 0)], "small people", 2), (cases[(1, 1)], "id drift", 3)]:
        picture = draw_case(images, gt, pred, case, category=category, height=80)
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
        assert picture.shape[1] > (tiles - 1) * 80 * 0.9      # side-by-side tiles of (about) square crops
    with pytest.raises(InputError, match="not an id switch"):
        draw_case(images, gt, pred, cases[(0, 0)], category="id drift")
    corner = clip([[make_person(0, 150, 50, step=3.0)]])                   # near the right border only
    case = score_people(corner, as_prediction(corner, [[None]]))[0]
    picture = draw_case(images[:1], corner, as_prediction(corner, [[None]]), case, height=80)
    assert picture.shape[1] == 2 * 80 + 4                                   # two square tiles and the gap


def test_worst_cases_prefers_other_videos_to_a_second_case_of_the_same_one():
    tiny = [make_person(i, 10 + 40 * i, 10, step=0.5 + 0.1 * i) for i in range(3)]    # 3 small people
    large = [make_person(0, 10, 10, step=5.0)]
    cases = []
    for name, people in [("000001_mpii_a", tiny), ("000002_mpii_b", large)]:
        gt = clip([people], name=name)
        cases += score_people(gt, as_prediction(gt, [[None] * len(people)]))
    picked = worst_cases(cases, "small people", count=2)
    assert [(c.video, c.track_id) for c in picked] == [("000001_mpii_a", 0), ("000002_mpii_b", 0)]
    picked = worst_cases(cases, "small people", count=3)                    # then the next one of video a
    assert [(c.video, c.track_id) for c in picked] == [("000001_mpii_a", 0), ("000001_mpii_a", 1),
                                                       ("000002_mpii_b", 0)]
