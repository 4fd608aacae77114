"""Tracking: distances, our HE + TIE tracker, memory, the peer baselines, the network pipeline, evaluation."""


import numpy as np
import pytest
import torch

from mpat_nb.codec_temporal import boxes_from_joints, encode_tvf_targets
from mpat_nb.config import SVF_NORMALISER
from mpat_nb.data.annotations import Person
from mpat_nb.skeleton import NUM_JOINTS
from mpat_nb.tracking import (
    EmbeddingTracker,
    FrameObservation,
    GreedyOKSTracker,
    HungarianIoUTracker,
    TrackerConfig,
    make_tracker,
)
from mpat_nb.tracking.costs import box_iou, he_distances, oks, tie_distances
from mpat_nb.tracking.observation import Detection

K = NUM_JOINTS
GRID = 32


def pose_at(x, y, spread=3.0):
    """(K, 3) a small person: joints on a vertical line around (x, y), score 1."""
    joints = np.zeros((K, 3))
    joints[:, 0] = x + np.linspace(-1, 1, K)
    joints[:, 1] = y + np.linspace(-spread, spread, K)
    joints[:, 2] = 1.0
    return joints


def detection(x, y, identity=None, dim=4):
    joints = pose_at(x, y)
    embedding = None if identity is None else np.eye(dim)[identity]
    box = boxes_from_joints(torch.as_tensor(joints[None], dtype=torch.float32), GRID)[0].numpy().astype(float)
    keypoints = np.zeros((17, 3))
    return Detection(joints, np.array([x, y], float), box, Person(keypoints), embedding)


def perfect_fields(previous, current, pairs):
    """TVF (2, H, W) x 2 in output pixels, exact for the given (i, j) pairs of true identities."""
    ids_previous = list(range(len(previous)))
    ids_current = [next((i for i, j in pairs if j == c), 100 + c) for c in range(len(current))]
    targets = encode_tvf_targets(
        torch.tensor(np.stack([d.joints for d in previous]) if previous else np.zeros((0, K, 3)), dtype=torch.float32),
        torch.tensor(np.stack([d.centre for d in previous]) if previous else np.zeros((0, 2)), dtype=torch.float32),
        ids_previous,
        torch.tensor(np.stack([d.joints for d in current]) if current else np.zeros((0, K, 3)), dtype=torch.float32),
        torch.tensor(np.stack([d.centre for d in current]) if current else np.zeros((0, 2)), dtype=torch.float32),
        ids_current, GRID, radius=1.5)
    return (targets.forward * SVF_NORMALISER).numpy(), (targets.backward * SVF_NORMALISER).numpy()


def observation(index, detections, fields=None):
    forward, backward = fields if fields is not None else (None, None)
    return FrameObservation(index, detections, forward, backward)


# ----------------------------------------------------------------------------------------------
# Distances
# ----------------------------------------------------------------------------------------------
def test_he_distances_on_unit_vectors():
    distances = he_distances(np.eye(3)[:2] * 5.0, np.eye(3))                 # scale does not matter
    np.testing.assert_allclose(distances, [[0, np.sqrt(2), np.sqrt(2)], [np.sqrt(2), 0, np.sqrt(2)]], atol=1e-7)


def test_tie_distance_is_zero_for_the_true_pair_with_perfect_fields():
    previous = [detection(8, 10), detection(24, 20)]
    current = [detection(26, 22), detection(10, 11)]                          # order swapped, both moved
    forward, backward = perfect_fields(previous, current, [(0, 1), (1, 0)])
    stacked = lambda ds: (np.stack([d.joints for d in ds]), np.stack([d.centre for d in ds]),  # noqa: E731
                          np.array([d.scale for d in ds]))
    distances = tie_distances(*stacked(previous), *stacked(current), forward, backward)
    assert distances.shape == (2, 2)
    np.testing.assert_allclose([distances[0, 1], distances[1, 0]], 0.0, atol=1e-5)
    assert distances[0, 0] > 1.0 and distances[1, 1] > 1.0                    # far apart in scale units


def test_oks_and_box_iou():
    a = pose_at(10, 10)
    assert oks(a[None], a[None], np.array([100.0]), np.array([100.0]))[0, 0] == pytest.approx(1.0)
    far = oks(a[None], pose_at(30, 10)[None], np.array([100.0]), np.array([100.0]))[0, 0]
    assert far < 1e-3
    absent = a.copy()
    absent[:, 2] = 0
    assert oks(a[None], absent[None], np.array([100.0]), np.array([100.0]))[0, 0] == 0.0
    iou = box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 2, 2]]))
    np.testing.assert_allclose(iou, [[1 / 7, 0.0, 1.0]])


# ----------------------------------------------------------------------------------------------
# Our tracker
# ----------------------------------------------------------------------------------------------
def test_he_keeps_identities_when_people_swap_places():
    """Two people exchange positions between frames: geometry alone (IoU) swaps them, HE does not."""
    first = [detection(8, 16, identity=0), detection(24, 16, identity=1)]
    second = [detection(23, 16, identity=0), detection(9, 16, identity=1)]  # each moved to the other's place
    ours = EmbeddingTracker(TrackerConfig(use_tie=False))
    ids_first = ours.step(observation(0, first))
    ids_second = ours.step(observation(1, second))
    assert ids_second.tolist() == ids_first.tolist()
    assert "he" in ours.last_costs and ours.last_costs["combined"].shape == (2, 2)
    iou = HungarianIoUTracker()
    iou.step(observation(0, first))
    assert iou.step(observation(1, second)).tolist() == ids_first[::-1].tolist()


def test_tie_only_follows_fast_motion_that_breaks_iou():
    """A jump larger than the person: no box overlap, but perfect TVFs link it."""
    first = [detection(6, 8), detection(26, 24)]
    second = [detection(14, 24), detection(20, 8)]                            # 0 -> (20, 8), 1 -> (14, 24)
    fields = perfect_fields(first, second, [(0, 1), (1, 0)])
    ours = EmbeddingTracker(TrackerConfig(use_he=False))
    ids = ours.step(observation(0, first))
    assert ours.step(observation(1, second, fields)).tolist() == [ids[1], ids[0]]
    iou = HungarianIoUTracker()
    iou.step(observation(0, first))
    assert set(iou.step(observation(1, second)).tolist()).isdisjoint(ids.tolist())   # all new: no overlap


def test_births_ends_and_an_empty_frame():
    tracker = EmbeddingTracker(TrackerConfig(use_tie=False))
    assert tracker.step(observation(0, [detection(8, 8, 0)])).tolist() == [0]
    assert tracker.step(observation(1, [detection(8, 8, 0), detection(24, 24, 1)])).tolist() == [0, 1]  # birth
    assert tracker.step(observation(2, [])).tolist() == []                                           # both end
    assert tracker.step(observation(3, [detection(8, 8, 0)])).tolist() == [2]      # no memory: a new track
    tracker.reset()
    assert tracker.step(observation(0, [detection(8, 8, 0)])).tolist() == [0]


def test_memory_refinds_a_person_after_a_full_occlusion():
    people = lambda t, hidden: [detection(4 + t, 8, 0)] + ([] if hidden else [detection(24 - t, 24, 1)])  # noqa: E731
    frames = [people(t, hidden=t in (2, 3, 4)) for t in range(7)]
    results = {}
    for memory in (False, True):
        tracker = EmbeddingTracker(TrackerConfig(use_tie=False, memory=memory))
        results[memory] = [tracker.step(observation(t, d)).tolist() for t, d in enumerate(frames)]
    assert results[True][6] == results[True][0]                                 # identity 1 re-found
    assert results[False][6][1] != results[False][0][1]                         # without memory: a new id
    assert results[False][6][0] == results[False][0][0]                         # the visible one is kept by both
    short = EmbeddingTracker(TrackerConfig(use_tie=False, memory=True, memory_frames=2))
    ids = [short.step(observation(t, d)).tolist() for t, d in enumerate(frames)]
    assert ids[6][1] != ids[0][1]                                               # gap 4 > memory of 2 frames


def test_a_stranger_is_not_matched():
    tracker = EmbeddingTracker(TrackerConfig(use_tie=False, tau_he=0.3, max_cost=2.5))
    tracker.step(observation(0, [detection(8, 8, 0)]))
    assert tracker.step(observation(1, [detection(8, 8, 1)])).tolist() == [1]   # orthogonal HE: d = 1.41 > 0.75


def test_config_checks_and_variants():
    with pytest.raises(ValueError, match="use_he or use_tie"):
        TrackerConfig(use_he=False, use_tie=False)
    with pytest.raises(ValueError, match="unknown tracker variant"):
        make_tracker("optical flow")
    assert make_tracker("HE+TIE+memory").config.memory and not make_tracker("HE only").config.use_tie
    assert isinstance(make_tracker("greedy OKS"), GreedyOKSTracker)
    with pytest.raises(ValueError, match="Human Embeddings"):
        tracker = EmbeddingTracker()
        tracker.step(observation(0, [detection(8, 8)]))
        tracker.step(observation(1, [detection(8, 8)]))


# ----------------------------------------------------------------------------------------------
# Baselines
# ----------------------------------------------------------------------------------------------
def test_greedy_oks_takes_the_best_pair_first():
    tracker = GreedyOKSTracker(TrackerConfig(oks_threshold=0.2))
    tracker.step(observation(0, [detection(10, 16), detection(13, 16)]))
    ids = tracker.step(observation(1, [detection(13.2, 16), detection(30, 16)]))
    assert ids.tolist() == [1, 2]                                # best OKS pair (track 1) first; far one is new
    assert tracker.last_costs["oks"].shape == (2, 2)


# ----------------------------------------------------------------------------------------------
# The network pipeline and the evaluation (shipped tiny models, a short clip)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models():
    from mpat_nb.checkpoints import load_spatialnet, load_temporalnet, shipped_checkpoint

    torch.set_num_threads(2)
    return load_spatialnet(shipped_checkpoint("spatialnet_tiny.pt")), load_temporalnet(
        shipped_checkpoint("temporalnet_tiny.pt"))


@pytest.fixture(scope="module")
def clip():
    from mpat_nb.data.synth import generate_clip

    return generate_clip("easy", 900_003, 5, (160, 128))


def test_networks_run_once_per_frame(models, clip):
    from mpat_nb.tracking.pipeline import observe_video

    spatial, temporal = models
    calls = {"spatial": 0, "tie": 0, "he": 0}
    hooks = [module.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
             for name, module in (("spatial", spatial), ("tie", temporal.temporal_instance),
                                  ("he", temporal.human_embedding))]
    try:
        observations = observe_video(clip.frames, spatial, temporal)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls["spatial"] == 5 and calls["tie"] == 4 and calls["he"] <= 5
    assert observations[0].tvf_forward is None
    assert observations[1].tvf_forward.shape == observations[1].tvf_backward.shape == (2, 64, 64)
    assert all(o.network_seconds > 0 and (o.width, o.height) == (160, 128) for o in observations)
    from mpat_nb.tracking.cuts import frame_change  # the shot-cut test's input, per frame

    assert [o.frame_change for o in observations] == [0.0] + [
        frame_change(a, b) for a, b in zip(clip.frames[:-1], clip.frames[1:])]
    for detection in (d for o in observations for d in o.detections):
        assert detection.embedding.shape == (temporal.config.human_embedding_dim,)
        assert detection.joints.shape == (NUM_JOINTS, 3) and detection.gt_track_id is None


def test_ground_truth_poses_track_and_evaluate(models, clip):
    from mpat_nb.evaluate import evaluate
    from mpat_nb.tracking.pipeline import observe_video, run_tracker

    spatial, temporal = models
    observations = observe_video(clip.frames, spatial, temporal, gt_video=clip.video)
    for frame, observation in zip(clip.video.frames, observations):
        assert sorted(d.gt_track_id for d in observation.detections) == sorted(p.track_id for p in frame.people)
    run = run_tracker(observations, make_tracker("HE+TIE"), name=clip.video.name)
    assert len(run.video.frames) == 5 and len(run.association_seconds) == 5
    for frame in run.video.frames:
        ids = [p.track_id for p in frame.people]
        assert len(set(ids)) == len(ids)
    result = evaluate(clip.video, run.video)
    assert result.total_map > 99.0                                    # the GT poses themselves
    assert result.total_mota > 80.0                                   # an easy clip: hardly any switch


def test_output_drops_low_scoring_joints(models, clip):
    from mpat_nb.tracking.pipeline import observe_video, run_tracker

    spatial, _ = models
    observations = observe_video(clip.frames[:2], spatial)                    # no TemporalNet: baselines only
    assert all(d.embedding is None for o in observations for d in o.detections)
    loose = run_tracker(observations, make_tracker("greedy OKS"), min_joint_score=0.0)
    strict = run_tracker(observations, make_tracker("greedy OKS"), min_joint_score=0.5)
    count = lambda run: sum(int(p.present.sum()) for f in run.video.frames for p in f.people)  # noqa: E731
    assert count(strict) <= count(loose)
    scores = [s for f in strict.video.frames for p in f.people for s in p.scores[p.present]]
    assert all(s >= 0.5 for s in scores)


def test_bad_frames(models):
    from mpat_nb.tracking.pipeline import NetworkObserver
    from mpat_nb.utils import InputError

    spatial, temporal = models
    observer = NetworkObserver(spatial, temporal)
    with pytest.raises(InputError, match="empty"):
        observer.observe(np.zeros((0, 10, 3), np.uint8))
    gray = observer.observe(np.full((40, 90), 30, np.uint8))                  # grayscale, odd size, nobody
    rgba = observer.observe(np.full((40, 90, 4), 30, np.uint8))
    assert gray.detections == [] and rgba.tvf_forward.shape == (2, 64, 64)
    assert rgba.frame_change == 0.0                                          # the same grey, converted both times
    with pytest.raises(ValueError, match="flip_test"):
        from mpat_nb.decode import DecodeConfig

        NetworkObserver(spatial, temporal, DecodeConfig(flip_test=True))


def test_evaluation_tables(models):
    from mpat_nb.tracking.config import VARIANTS
    from mpat_nb.tracking.evaluation import evaluate_variants, observe_clips, results_table

    spatial, temporal = models
    clips = observe_clips(spatial, temporal, ["easy"], num_clips=1, num_frames=3, size=128)
    results = evaluate_variants(clips, VARIANTS)
    assert len(results) == 2 * len(VARIANTS)
    table = results_table(results, "ground truth", "mota")
    assert all(variant in table for variant in VARIANTS) and "easy" in table
    assert all(r.association_ms >= 0 and r.network_ms > 0 for r in results)
    assert "switches" in results_table(results, "predicted", "switches")


def test_weights_decide_the_terms():
    with pytest.raises(ValueError, match="weighted above 0"):
        TrackerConfig(use_tie=False, weight_he=0.0)
    with pytest.raises(ValueError, match="weighted above 0"):
        TrackerConfig(weight_he=-1.0)
    base = TrackerConfig(weight_tie=0.0)                       # HE+TIE with TIE switched off by its weight
    assert make_tracker("TIE only", base).config.weight_tie == 1.0
    first = [detection(8, 16, identity=0), detection(24, 16, identity=1)]
    tracker = EmbeddingTracker(base)
    tracker.step(observation(0, first))
    tracker.step(observation(1, first, perfect_fields(first, first, [(0, 0), (1, 1)])))
    assert "tie" not in tracker.last_costs and "he" in tracker.last_costs


def test_both_sources_from_one_pass_equal_separate_passes(models, clip):
    from mpat_nb.tracking.pipeline import observe_video, observe_video_sources

    spatial, temporal = models
    both = observe_video_sources(clip.frames[:3], spatial, temporal, clip.video)
    alone = {"predicted": observe_video(clip.frames[:3], spatial, temporal),
             "ground truth": observe_video(clip.frames[:3], spatial, temporal, gt_video=clip.video)}
    for source in ("predicted", "ground truth"):
        for one, other in zip(both[source], alone[source]):
            assert len(one.detections) == len(other.detections)
            for a, b in zip(one.detections, other.detections):
                np.testing.assert_allclose(a.joints, b.joints)
                np.testing.assert_allclose(a.embedding, b.embedding, rtol=1e-4, atol=1e-5)
            if one.tvf_forward is not None:
                np.testing.assert_allclose(one.tvf_forward, other.tvf_forward, rtol=1e-5, atol=1e-6)


def test_memory_forgets_positions_across_a_shot_cut():
    """A track lost before a cut is re-found after it on HE alone: its predicted position belongs to the old shot."""
    config = TrackerConfig(use_tie=False, memory=True, cut_threshold=0.5)
    frames = [[detection(4, 8, 0), detection(24, 24, 1)], [detection(4, 8, 0)], [detection(5, 8, 0)],
              [detection(5, 8, 0), detection(50, 50, 1)]]                              # person 1 reappears far away
    changes = [0.0, 0.0, 0.9, 0.0]                                                     # frame 2 starts a new shot
    for across in (False, True):
        tracker = EmbeddingTracker(config)
        for t, (people, change) in enumerate(zip(frames, changes)):
            observed = FrameObservation(t, people, None, None, frame_change=change if across else 0.0)
            ids = tracker.step(observed)
        memory_cost = tracker.last_costs["memory"]                                     # (lost tracks, unmatched)
        assert ids.tolist() == [0, 1]                                                  # re-found either way (same HE)
        assert tracker.last_costs["memory_across_cut"].tolist() == [across]
        if across:
            assert memory_cost[0, 0] == pytest.approx(0.0, abs=1e-9)                   # HE alone: identical embedding
        else:
            assert memory_cost[0, 0] == pytest.approx(config.memory_position_weight * 4.0)   # far: the capped term


def test_pose_term_joins_the_cost_within_a_shot_and_leaves_it_at_a_cut():
    """w_pose d_pose / tau_pose with d_pose = 1 - OKS: two people in the same clothes are told apart by where their
    joints are; at a shot cut geometry says nothing and the term leaves the cost (HE alone)."""
    previous = [detection(4, 8, 0), detection(20, 8, 0)]                               # same HE: same clothes
    current = [detection(21, 8, 0), detection(5, 8, 0)]                                # they swapped places in the list
    config = TrackerConfig(use_tie=False, weight_pose=1.0, tau_pose=0.5, cut_threshold=0.5)
    for change, expected in ((0.0, [1, 0]), (0.9, None)):
        tracker = EmbeddingTracker(config)
        tracker.step(observation(0, previous))
        ids = tracker.step(FrameObservation(1, current, None, None, frame_change=change))
        if expected is not None:
            assert ids.tolist() == expected                                          # the nearer pose wins
            d_pose = tracker.last_costs["pose"]
            np.testing.assert_allclose(tracker.last_costs["combined"],
                                       (tracker.last_costs["he"] / config.tau_he + d_pose / config.tau_pose) / 2)
        else:
            assert "pose" not in tracker.last_costs                                  # HE alone across the cut
            np.testing.assert_allclose(tracker.last_costs["combined"], tracker.last_costs["he"] / config.tau_he)
    from mpat_nb.tracking.config import variant_config

    assert variant_config("HE only", config).weight_pose == 0.0
