"""Grouping purity and completeness: perfect, mixed and split groupings on hand-made frames."""

import math

import numpy as np
import pytest

from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.grouping_quality import grouping_quality
from mpat_nb.skeleton import joints_to_slots17


def _person(x_offset: float, joints_from=None, track_id=0, head=True) -> Person:
    joints = np.zeros((15, 3))
    joints[:, 0] = x_offset + np.arange(15)
    joints[:, 1] = 10.0 * np.arange(15)
    joints[:, 2] = 1.0
    if joints_from is not None:
        joints[:, 2] = 0.0
        joints[joints_from, 2] = 1.0
    return Person(keypoints=joints_to_slots17(joints), track_id=track_id,
                  bbox_head=np.array([x_offset, 0.0, 20.0, 20.0]) if head else None)


def _video(people_per_frame):
    return Video("v", [Frame(file_name=f"{i}.jpg", people=people) for i, people in enumerate(people_per_frame)])


GT = _video([[_person(0.0, track_id=1), _person(200.0, track_id=2)]])


def test_perfect_grouping_is_pure_and_complete():
    quality = grouping_quality(GT, _video([[_person(0.0), _person(200.0, track_id=1)]]))
    assert quality.purity == 1.0 and quality.completeness == 1.0 and quality.correct_joints == 30


def test_mixed_person_lowers_purity():
    first = np.arange(5)
    mixed = _person(0.0)
    mixed_joints = mixed.joints.copy()
    mixed_joints[first, 0] += 200.0                  # five joints taken from the other person
    other = _person(200.0, joints_from=np.arange(5, 15), track_id=1)
    prediction = _video([[Person(keypoints=joints_to_slots17(mixed_joints), track_id=0), other]])
    quality = grouping_quality(GT, prediction)
    # contingency (prediction x GT): [[10, 5], [0, 10]], 25 correct joints
    assert quality.correct_joints == 25
    assert quality.purity == pytest.approx(20 / 25)        # prediction 0 mixes 10 + 5
    assert quality.completeness == pytest.approx(20 / 25)  # GT person 2 is split 5 + 10


def test_split_person_lowers_completeness_only():
    halves = [_person(0.0, joints_from=np.arange(7)), _person(0.0, joints_from=np.arange(7, 15), track_id=1),
              _person(200.0, track_id=2)]
    quality = grouping_quality(GT, _video([halves]))
    assert quality.purity == 1.0
    assert quality.completeness == pytest.approx((8 + 15) / 30)


def test_wrong_joints_do_not_count_and_empty_is_nan():
    far = _person(1000.0)
    assert grouping_quality(GT, _video([[far]])).correct_joints == 0
    assert math.isnan(grouping_quality(GT, _video([[]])).purity)
    with pytest.raises(ValueError, match="head box"):
        grouping_quality(_video([[_person(0.0, head=False)]]), _video([[_person(0.0)]]))
    with pytest.raises(ValueError, match="frames"):
        grouping_quality(GT, _video([[], []]))


def test_separation_sees_people_merge_where_the_spread_alone_improves():
    from mpat_nb.grouping_quality import embedding_separation

    rng = np.random.default_rng(0)
    owners = np.repeat([0, 1, 2], 5)                                                  # 3 people, 5 joints each
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    apart = centres[owners] + rng.normal(0, 0.5, (15, 2))
    separation = embedding_separation(apart, owners)
    assert separation.ratio > 4 and separation.between == pytest.approx(4.0, abs=1.0)
    merged = 0.05 * apart                                                             # every cluster shrinks ...
    shrunk = embedding_separation(merged, owners)
    assert shrunk.within < separation.within                                          # ... so the spread "improves"
    assert shrunk.ratio == pytest.approx(separation.ratio)                            # but nothing got apart
    collapsed = apart.copy()
    collapsed[owners == 1] = apart[owners == 0] + 0.01                               # person 1 lands on person 0
    assert embedding_separation(collapsed, owners).ratio < 0.5 * separation.ratio
    assert np.isnan(embedding_separation(apart[:5], owners[:5]).ratio)               # one person: undefined
    assert embedding_separation(np.vstack([apart, [[9, 9]]]), np.append(owners, -1)).ratio == separation.ratio
