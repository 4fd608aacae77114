"""Greedy embedding grouping: recovers well-separated people, respects thresholds and shapes."""

import numpy as np
import pytest

from mpat_nb.grouping import GroupingConfig, group_candidates


def _scene(num_people=3, num_joints=15, spread=0.05, rng=None):
    rng = rng or np.random.default_rng(0)
    tags = np.arange(num_people) * 3.0                     # well separated person tags
    xy = rng.random((num_joints, num_people, 2)) * 60
    scores = 0.5 + 0.5 * rng.random((num_joints, num_people))
    embeddings = tags[None, :, None] + spread * rng.standard_normal((num_joints, num_people, 1))
    return xy, scores, embeddings, tags


def test_recovers_people_by_tag():
    xy, scores, embeddings, tags = _scene()
    poses, person_embeddings = group_candidates(xy, scores, embeddings)
    assert poses.shape == (3, 15, 3)
    for pose, emb in zip(poses, person_embeddings):
        person = int(np.argmin(np.abs(tags - emb[0])))
        np.testing.assert_allclose(pose[:, :2], xy[:, person])


def test_low_scores_are_ignored_and_small_people_dropped():
    xy, scores, embeddings, _ = _scene(num_people=2)
    scores[:, 1] = 0.01
    scores[3:, 0] = 0.01                                   # person 0 keeps 3 joints
    poses, _ = group_candidates(xy, scores, embeddings, GroupingConfig(min_joints=3))
    assert len(poses) == 1 and (poses[0, :, 2] > 0).sum() == 3
    poses, _ = group_candidates(xy, scores, embeddings, GroupingConfig(min_joints=4))
    assert len(poses) == 0


def test_tags_too_far_apart_split_a_person():
    xy, scores, embeddings, _ = _scene(num_people=1)
    embeddings[8:] += 5.0
    poses, _ = group_candidates(xy, scores, embeddings, GroupingConfig(tag_threshold=1.0, min_joints=1))
    assert len(poses) == 2


def test_multi_dimensional_embeddings_and_bad_shapes():
    xy, scores, embeddings, _ = _scene()
    embeddings3 = np.concatenate([embeddings, np.zeros_like(embeddings), np.zeros_like(embeddings)], axis=2)
    poses, person_embeddings = group_candidates(xy, scores, embeddings3)
    assert poses.shape[0] == 3 and person_embeddings.shape == (3, 3)
    with pytest.raises(ValueError, match="expected xy"):
        group_candidates(xy[:, :, :1], scores, embeddings)


def test_empty_input_gives_no_people():
    poses, emb = group_candidates(np.zeros((15, 0, 2)), np.zeros((15, 0)), np.zeros((15, 0, 1)))
    assert poses.shape == (0, 15, 3) and emb.shape == (0, 1)
