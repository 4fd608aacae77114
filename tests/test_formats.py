"""Tests for mpat_nb.data.formats (PoseTrack17/18, COCO) and mpat_nb.data.video_io (video, frames, images).

Real files come from ``shared/real_samples`` next to the repository (or ``$MPAT_NB_REAL_SAMPLES``); tests
that need them are skipped, with the expected path, when the folder is absent. Everything else runs on
seeded synthetic data in a temporary folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mpat_nb.data import formats, video_io
from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.data.formats import (
    load_coco_keypoints,
    load_posetrack,
    load_posetrack17,
    load_posetrack18,
    load_posetrack_any,
    load_posetrack_folder,
    save_coco_keypoints,
    save_posetrack,
    save_posetrack17,
    save_posetrack18,
    save_posetrack_folder,
)
from mpat_nb.data.video_io import (
    iter_frame_images,
    iter_video,
    read_image,
    read_video,
    video_info,
    write_frames,
    write_video,
)
from mpat_nb.skeleton import JOINT_TO_SLOT17, KEYPOINT_NAMES_17
from mpat_nb.utils import InputError

DEFAULT_REAL_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "real_samples"


# ----------------------------------------------------------------------------------------------
# Fixtures and helpers
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real() -> Path:
    folder = Path(os.environ.get("MPAT_NB_REAL_SAMPLES", DEFAULT_REAL_SAMPLES))
    if not folder.is_dir():
        pytest.skip(f"real samples not found at {folder} (set MPAT_NB_REAL_SAMPLES to their folder)")
    return folder


def pt18_val(real: Path, sequence: str) -> Path:
    return real / "mmpose_posetrack18" / "annotations" / "val" / f"{sequence}.json"


SEQUENCES = ("012834_mpii_test", "009473_mpii_test", "003418_mpii_test")


def assert_same(a, b, path="value", atol=0.0):
    """Deep equality for the in-memory types, numpy arrays, dicts and lists (``atol`` for arrays)."""
    if isinstance(a, (Video, Frame, Person)):
        assert type(a) is type(b), path
        for name in vars(a):
            assert_same(getattr(a, name), getattr(b, name), f"{path}.{name}", atol)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert a is not None and b is not None, f"{path}: {a!r} vs {b!r}"
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=0, atol=atol, err_msg=path)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]", atol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]", atol)
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def assert_metric_content_same(a: Video, b: Video, atol=1e-9):
    """What the evaluation reads: frames in order, names, labels, ignore regions, people's keypoints,
    scores, track ids, head boxes and person scores."""
    assert len(a.frames) == len(b.frames)
    for fa, fb in zip(a.frames, b.frames):
        assert (fa.file_name, fa.is_labeled) == (fb.file_name, fb.is_labeled)
        assert_same(fa.ignore_regions, fb.ignore_regions, "ignore_regions")
        assert len(fa.people) == len(fb.people)
        for pa, pb in zip(fa.people, fb.people):
            assert pa.track_id == pb.track_id
            assert_same(pa.keypoints, pb.keypoints, "keypoints")
            if pa.scores is None or pb.scores is None:  # only present joints carry a score in PoseTrack17
                assert pa.scores is pb.scores is None
            else:
                assert_same(pa.scores[pa.present], pb.scores[pb.present], "scores")
            assert_same(pa.bbox_head, pb.bbox_head, "bbox_head", atol=atol)
            assert pa.score == pb.score


def random_person(rng: np.random.Generator, track_id: int, prediction: bool) -> Person:
    """A random person in the in-memory convention: ears absent, absent slots all zero, v in {1, 2}."""
    present = rng.random(17) < 0.75
    present[[3, 4]] = False
    keypoints = np.zeros((17, 3))
    keypoints[present, :2] = np.round(rng.uniform(0, 640, (present.sum(), 2)), rng.integers(0, 4))
    keypoints[present, 2] = rng.integers(1, 3, present.sum())
    if present[0]:
        keypoints[0, :2] = 0.0  # a present joint at the origin must survive (v != 0 keeps it present)
    keypoints_all = keypoints.copy()
    keypoints_all[~present] = np.c_[rng.uniform(0, 640, (17 - present.sum(), 2)), np.ones(17 - present.sum())]
    return Person(
        keypoints=keypoints,
        track_id=track_id,
        scores=rng.random(17) if prediction else None,
        bbox=rng.uniform(0, 300, 4),
        bbox_head=np.round(rng.uniform(0, 100, 4), 1),
        score=float(rng.random()) if prediction else None,
        keypoints_all=None if prediction else keypoints_all,
        centre=None if prediction else rng.uniform(0, 640, 2),
        extra={"note": f"person {track_id}", "tags": [1, 2.5]} if track_id % 2 else {},
    )


def random_video(rng: np.random.Generator, name="000042_mpii_synth", num_frames=5, prediction=False) -> Video:
    frames = []
    for t in range(num_frames):
        ids = rng.permutation(30)[: rng.integers(0, 5)]  # some frames are empty
        frames.append(Frame(
            file_name=f"images/val/{name}/{t:06d}.jpg",
            image_id=1000 + 7 * t,
            width=640,
            height=480,
            is_labeled=bool(t % 2 == 0 or len(ids)),
            people=[random_person(rng, int(i), prediction) for i in ids],
            ignore_regions=[rng.uniform(0, 640, (rng.integers(3, 8), 2)) for _ in range(rng.integers(0, 3))],
        ))
    return Video(name=name, frames=frames)


def smooth_frames(rng: np.random.Generator, num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: moving colour gradients, which codecs keep well (unlike noise)."""
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames = [np.stack([127 + 100 * np.sin(xx / 9.0 + yy / 13.0 + 0.4 * t + p) for p in phase], axis=-1)
              for t in range(num_frames)]
    return np.asarray(frames).round().astype(np.uint8)


def raise_match(path: Path, *fragments: str):
    """pytest.raises(InputError) whose message names ``path`` and contains every fragment."""
    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(InputError)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            message = str(self.info.value)
            assert str(path) in message, f"message does not name {path}: {message}"
            for fragment in fragments:
                assert fragment in message, f"{fragment!r} not in: {message}"
            return handled
    return _Check()


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------------------------
# Real PoseTrack18 files
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sequence, people, polygons", [
    ("012834_mpii_test", 11, [152, 18, 28, 57]),
    ("009473_mpii_test", 2, [25, 21]),
    ("003418_mpii_test", 1, [66, 13, 46, 18, 23, 13, 35, 26, 23]),
])
def test_real_posetrack18_counts(real, sequence, people, polygons):
    path = pt18_val(real, sequence)
    video = load_posetrack18(path)
    assert video.name == sequence and len(video) == 1
    frame = video.frames[0]
    assert (frame.width, frame.height, frame.is_labeled) == (1920, 1080, True)
    assert frame.file_name == f"images/val/{sequence}/000000.jpg"
    assert len(frame.people) == people
    assert video.track_ids == list(range(people))
    assert [len(p) for p in frame.ignore_regions] == polygons
    raw = json.loads(path.read_text())
    for person, ann in zip(frame.people, raw["annotations"]):
        assert person.scores is None                      # GT: "scores": []
        assert person.bbox_head.tolist() == ann["bbox_head"]
        assert not person.present[[3, 4]].any()           # ears are placeholders
        assert person.present.sum() == ann["num_keypoints"] <= 15
        triples = np.asarray(ann["keypoints"], float).reshape(17, 3)
        np.testing.assert_array_equal(person.keypoints, triples)  # real GT: v = 1 where present
    np.testing.assert_array_equal(frame.ignore_regions[0][:, 0], raw["images"][0]["ignore_regions_x"][0])
    assert max(p.present.sum() for p in frame.people) == (11 if sequence == "003418_mpii_test" else 15)


def test_real_posetrack18_merged_file_matches_single_files(real):
    merged = load_posetrack(real / "mmpose_posetrack18" / "annotations" / "test_posetrack18_val.json")
    assert [len(f.people) for f in merged.frames] == [11, 2, 1]
    assert [len(f.ignore_regions) for f in merged.frames] == [4, 2, 9]
    for frame, sequence in zip(merged.frames, SEQUENCES):
        assert_same(frame, load_posetrack18(pt18_val(real, sequence)).frames[0], sequence)
    head = merged.frames[0].people[10].bbox_head
    assert head.tolist() == [407, -29, 35, 40]  # a head box may leave the image


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_real_posetrack18_round_trip(real, tmp_path, sequence):
    original = load_posetrack18(pt18_val(real, sequence))
    out = tmp_path / f"{sequence}.json"
    save_posetrack18(original, out)
    assert_same(load_posetrack18(out), original)
    # what poseval reads is unchanged in the file itself
    raw, written = json.loads(pt18_val(real, sequence).read_text()), json.loads(out.read_text())
    assert written["categories"][0]["keypoints"] == list(KEYPOINT_NAMES_17)
    for key in ("image_id", "track_id", "keypoints", "bbox_head", "id"):
        assert [a[key] for a in written["annotations"]] == [a[key] for a in raw["annotations"]], key
    for key in ("file_name", "id", "ignore_regions_x", "ignore_regions_y"):
        assert written["images"][0][key] == raw["images"][0][key], key


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_real_posetrack18_to_17_and_back(real, tmp_path, sequence):
    original = load_posetrack18(pt18_val(real, sequence))
    save_posetrack17(original, tmp_path / "seq.json")
    as17 = load_posetrack(tmp_path / "seq.json")
    assert_metric_content_same(as17, original, atol=0)  # integer head boxes: exact
    save_posetrack18(as17, tmp_path / "back.json")
    assert_metric_content_same(load_posetrack18(tmp_path / "back.json"), original, atol=0)


def test_real_merged_file_needs_one_sequence_per_file_for_poseval(real, tmp_path):
    merged = load_posetrack(real / "mmpose_posetrack18" / "annotations" / "test_posetrack18_val.json")
    out = tmp_path / f"{merged.name}.json"
    with raise_match(out, "3 sequences"):
        save_posetrack18(merged, out)
    save_posetrack18(merged, out, check_poseval=False)
    assert_same(load_posetrack18(out), merged)


# ----------------------------------------------------------------------------------------------
# Real COCO-like files
# ----------------------------------------------------------------------------------------------
def coco_slot(name: str) -> int:
    return KEYPOINT_NAMES_17.index(name)


def test_real_coco_read(real):
    path = real / "mmpose_coco" / "test_coco.json"
    frames = load_coco_keypoints(path)
    raw = json.loads(path.read_text())
    assert [f.image_id for f in frames] == [785, 40083, 196141, 197388]
    assert [(f.width, f.height) for f in frames] == [(640, 425), (500, 333), (640, 429), (640, 392)]
    assert [len(f.people) for f in frames] == [1, 3, 5, 5]
    people = [p for f in frames for p in f.people]
    assert len(people) == 14
    assert sum(p.present.any() for p in people) == 12
    for person, ann in zip(people, raw["annotations"]):
        coco = np.asarray(ann["keypoints"], float).reshape(17, 3)
        np.testing.assert_array_equal(person.extra["coco_keypoints"], coco)
        assert not person.present[1:5].any()  # eyes/ears are not head_bottom/head_top/placeholder ears
        body = [i for i, name in enumerate(raw["categories"][0]["keypoints"]) if name not in
                ("left_eye", "right_eye", "left_ear", "right_ear")]
        expected = np.where(coco[body, 2:3] > 0, coco[body], 0)
        np.testing.assert_array_equal(person.keypoints[body], expected)  # same names, same positions in COCO
        assert person.extra["id"] == ann["id"] and person.extra["area"] == ann["area"]
        assert person.bbox.tolist() == ann["bbox"]
    assert [p.track_id for p in frames[2].people] == [0, 1, 2, 3, 4]  # no track ids: index in image


@pytest.mark.parametrize("relative", ["mmpose_coco/test_coco.json", "mmpose_ochuman/test_ochuman.json",
                                      "mmpose_crowdpose/test_crowdpose.json"])
def test_real_coco_lossless_round_trip(real, tmp_path, relative):
    path = real / relative
    frames = load_coco_keypoints(path)
    save_coco_keypoints(frames, tmp_path / "out.json")
    again = load_coco_keypoints(tmp_path / "out.json")
    assert_same(again, frames)
    raw, written = json.loads(path.read_text()), json.loads((tmp_path / "out.json").read_text())
    assert written["categories"] == raw["categories"]
    for ann_raw, ann_written in zip(raw["annotations"], written["annotations"], strict=True):
        ann_written.pop("track_id")
        assert ann_written == ann_raw  # every original field, value for value
    for image_raw, image_written in zip(raw["images"], written["images"], strict=True):
        assert {k: image_raw[k] for k in ("file_name", "id", "width", "height")} == image_written


def test_real_coco_edit_is_written(real, tmp_path):
    frames = load_coco_keypoints(real / "mmpose_coco" / "test_coco.json")
    person = frames[0].people[0]
    person.keypoints[coco_slot("left_wrist")] = [1.5, 2.5, 2]
    person.keypoints[coco_slot("right_ankle")] = 0  # dropped
    save_coco_keypoints(frames, tmp_path / "edit.json")
    again = load_coco_keypoints(tmp_path / "edit.json")[0].people[0]
    np.testing.assert_array_equal(again.keypoints, person.keypoints)
    assert again.extra["num_keypoints"] == 16
    np.testing.assert_array_equal(again.extra["coco_keypoints"][:5], person.extra["coco_keypoints"][:5])  # face kept


def test_real_ochuman_read(real):
    frames = load_coco_keypoints(real / "mmpose_ochuman" / "test_ochuman.json")
    assert [len(f.people) for f in frames] == [1, 2, 2]
    assert [(f.width, f.height) for f in frames] == [(900, 864), (665, 1000), (602, 900)]
    assert all(not p.present[1:5].any() and p.present.sum() >= 9 for f in frames for p in f.people)
    assert isinstance(frames[0].people[0].extra["segmentation"], dict)


def test_real_crowdpose_maps_head_and_neck_by_name(real):
    path = real / "mmpose_crowdpose" / "test_crowdpose.json"
    frames = load_coco_keypoints(path)
    raw = json.loads(path.read_text())
    names = raw["categories"][0]["keypoints"]
    assert len(names) == 14 and [len(f.people) for f in frames] == [3, 2]
    for person, ann in zip([p for f in frames for p in f.people], raw["annotations"]):
        triples = np.asarray(ann["keypoints"], float).reshape(14, 3)
        for name, slot in [("head", "head_top"), ("neck", "head_bottom"), ("left_knee", "left_knee")]:
            source = triples[names.index(name)]
            expected = source if source[2] > 0 else np.zeros(3)
            np.testing.assert_array_equal(person.keypoints[coco_slot(slot)], expected)
        assert not person.present[[0, 3, 4]].any()  # CrowdPose has no nose; ears never
    assert sum(not p.present.any() for f in frames for p in f.people) == 1


# ----------------------------------------------------------------------------------------------
# Real video
# ----------------------------------------------------------------------------------------------
def test_real_video_file_and_frames_agree(real):
    folder = real / "mmpose_posetrack18" / "videos" / "000001_mpiinew_test"
    from_mp4 = read_video(folder / "000001_mpiinew_test.mp4")
    from_jpgs = read_video(folder)
    assert from_mp4.shape == from_jpgs.shape == (5, 720, 1280, 3)
    assert from_mp4.dtype == from_jpgs.dtype == np.uint8
    difference = np.abs(from_mp4.astype(int) - from_jpgs.astype(int)).mean(axis=(1, 2, 3))
    assert np.all(difference < 6), difference  # codec loss only (about 2.5 grey levels)
    # RGB, not BGR: swapping channels makes the frames disagree much more
    assert np.abs(from_mp4[..., ::-1].astype(int) - from_jpgs.astype(int)).mean() > 2 * difference.mean()
    assert video_info(folder / "000001_mpiinew_test.mp4") == {
        "num_frames": 5, "fps": 30.0, "width": 1280, "height": 720}
    assert video_info(folder) == {"num_frames": 5, "fps": None, "width": 1280, "height": 720}
    lazy = iter_video(folder)
    np.testing.assert_array_equal(next(lazy), from_jpgs[0])


def test_real_frame_images_by_file_name(real):
    video = load_posetrack18(pt18_val(real, "009473_mpii_test"))
    (image,) = list(iter_frame_images(video, real / "mmpose_posetrack18"))
    assert image.shape == (1080, 1920, 3)
    with raise_match(real / "images/val/009473_mpii_test/000000.jpg", "image_root"):
        iter_frame_images(video, real)


# ----------------------------------------------------------------------------------------------
# Synthetic round trips
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("prediction", [False, True])
def test_posetrack18_round_trip_synthetic(tmp_path, seed, prediction):
    video = random_video(np.random.default_rng(seed), prediction=prediction)
    save_posetrack18(video, tmp_path / "000042_mpii_synth.json")
    assert_same(load_posetrack18(tmp_path / "000042_mpii_synth.json"), video)


@pytest.mark.parametrize("seed", range(5))
def test_posetrack17_round_trip_synthetic(tmp_path, seed):
    video = random_video(np.random.default_rng(seed), prediction=seed % 2 == 1)
    save_posetrack17(video, tmp_path / "v.json")
    as17 = load_posetrack17(tmp_path / "v.json")
    assert_metric_content_same(as17, video, atol=1e-9)  # x + w - x may differ in the last bit
    assert [f.image_id for f in as17.frames] == list(range(len(video)))
    save_posetrack(as17, tmp_path / "v18.json", fmt="posetrack18")
    assert_metric_content_same(load_posetrack(tmp_path / "v18.json"), video, atol=1e-9)


def test_presence_rule_follows_poseval(tmp_path):
    """0,0,0 is absent; (x, y, 0) is present (stored v = 1); (0, 0, 1) is present; writers zero absent slots."""
    keypoints = np.zeros(51)
    keypoints[0:3] = [0, 0, 1]        # nose at the origin, visible
    keypoints[15:18] = [10, 20, 0]    # left shoulder with v = 0 but coordinates
    keypoints[18:21] = [0, 0, 0]      # right shoulder absent
    data = {"images": [{"file_name": "images/val/000001_mpii_x/000000.jpg", "id": 5}],
            "annotations": [{"image_id": 5, "track_id": 3, "keypoints": keypoints.tolist(), "scores": []}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    person = load_posetrack18(path).frames[0].people[0]
    assert person.present.tolist() == [True] + [False] * 4 + [True] + [False] * 11
    np.testing.assert_array_equal(person.keypoints[5], [10, 20, 1])
    person.keypoints[7] = [50, 60, 0]  # absent in memory but with stray coordinates
    save_posetrack18(Video("000001_mpii_x", [Frame("images/val/000001_mpii_x/000000.jpg", 5, people=[person])]), path)
    written = json.loads(path.read_text())["annotations"][0]
    assert written["keypoints"][21:24] == [0, 0, 0] and written["num_keypoints"] == 2


def test_posetrack18_fifteen_names_in_any_order(tmp_path):
    rng = np.random.default_rng(3)
    person = random_person(rng, 1, prediction=True)
    order = rng.permutation(15)
    names = [KEYPOINT_NAMES_17[JOINT_TO_SLOT17[j]] for j in order]
    slots = JOINT_TO_SLOT17[order]
    data = {"categories": [{"name": "person", "keypoints": names}],
            "images": [{"file_name": "a/000001_mpii_x/000000.jpg", "id": 1}],
            "annotations": [{"image_id": 1, "track_id": 1, "keypoints": person.keypoints[slots].ravel().tolist(),
                             "scores": person.scores[slots].tolist()}]}
    (tmp_path / "f.json").write_text(json.dumps(data))
    loaded = load_posetrack18(tmp_path / "f.json").frames[0].people[0]
    np.testing.assert_array_equal(loaded.keypoints, person.keypoints)
    np.testing.assert_array_equal(loaded.scores[slots], person.scores[slots])


def test_image_ids_renumbered_only_when_not_unique(tmp_path):
    video = random_video(np.random.default_rng(0), num_frames=3)
    for frame in video.frames:
        frame.image_id = 0  # the Frame default
    save_posetrack18(video, tmp_path / "v.json")
    data = json.loads((tmp_path / "v.json").read_text())
    assert [im["id"] for im in data["images"]] == [420000, 420001, 420002]
    assert [im["vid_id"] for im in data["images"]] == ["000042"] * 3
    assert {a["image_id"] for a in data["annotations"]} <= {420000, 420001, 420002}
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])


def test_empty_frames_are_listed(tmp_path):
    video = Video("000007_bonn", [Frame(f"000007_bonn/{t:06d}.jpg", image_id=t, is_labeled=False) for t in range(3)])
    for fmt in ("posetrack18", "posetrack17"):
        save_posetrack(video, tmp_path / f"{fmt}.json", fmt=fmt)
        loaded = load_posetrack(tmp_path / f"{fmt}.json")
        assert [f.file_name for f in loaded.frames] == [f.file_name for f in video.frames]
        assert not any(f.is_labeled or f.people for f in loaded.frames)


def test_folders(tmp_path):
    rng = np.random.default_rng(1)
    videos = [random_video(rng, name=f"00000{i}_mpii_synth", num_frames=2) for i in (3, 1, 2)]
    save_posetrack_folder(videos, tmp_path / "gt")
    save_posetrack_folder(videos[:1], tmp_path / "gt17", fmt="posetrack17")
    loaded = load_posetrack_folder(tmp_path / "gt")
    assert [v.name for v in loaded] == ["000001_mpii_synth", "000002_mpii_synth", "000003_mpii_synth"]
    assert_same(loaded[0], videos[1])
    assert_same(load_posetrack_any(tmp_path / "gt" / "000003_mpii_synth.json"), [videos[0]])
    assert_metric_content_same(load_posetrack_any(tmp_path / "gt17")[0], videos[0])


def test_coco_save_of_posetrack_people(tmp_path):
    video = random_video(np.random.default_rng(2), num_frames=2, prediction=True)
    save_coco_keypoints(video.frames, tmp_path / "c.json")
    frames = load_coco_keypoints(tmp_path / "c.json")
    for fa, fb in zip(frames, video.frames):
        assert [p.track_id for p in fa.people] == [p.track_id for p in fb.people]
        for pa, pb in zip(fa.people, fb.people):
            body = [i for i in range(17) if i not in (1, 2, 3, 4)]  # COCO has no head_bottom / head_top
            np.testing.assert_array_equal(pa.keypoints[body], pb.keypoints[body])
            assert not pa.present[1:5].any()


# ----------------------------------------------------------------------------------------------
# Video and image writing
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ending", [".mp4", ".avi", ".gif"])
def test_write_video_reads_back(tmp_path, ending):
    frames = smooth_frames(np.random.default_rng(0), 6, 48, 64)
    write_video(frames, tmp_path / f"clip{ending}", fps=12)
    back = read_video(tmp_path / f"clip{ending}")
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames).mean() < 12
    assert files_in(tmp_path) == [f"clip{ending}"]  # no temporary file left


def test_write_video_pads_odd_sizes(tmp_path):
    frames = smooth_frames(np.random.default_rng(1), 3, 17, 33)
    write_video(iter(frames), tmp_path / "odd.mp4")
    back = read_video(tmp_path / "odd.mp4")
    assert back.shape == (3, 18, 34, 3)
    assert np.abs(back[:, :17, :33].astype(int) - frames).mean() < 12


@pytest.mark.parametrize("ext", [".png", ".bmp"])
def test_write_frames_lossless_round_trip(tmp_path, ext):
    frames = np.random.default_rng(0).integers(0, 256, (4, 20, 30, 3), dtype=np.uint8)
    write_frames(frames, tmp_path / "frames", ext=ext)
    assert files_in(tmp_path / "frames") == [f"{t:06d}{ext}" for t in range(4)]
    np.testing.assert_array_equal(read_video(tmp_path / "frames"), frames)


def test_write_frames_jpeg_and_replace(tmp_path):
    target = tmp_path / "frames"
    write_frames(np.zeros((5, 8, 8, 3), np.uint8), target, ext=".png")
    frames = smooth_frames(np.random.default_rng(2), 3, 32, 40)
    write_frames(frames, target)  # jpg, replaces the 5 png frames entirely
    assert files_in(target) == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert np.abs(read_video(target).astype(int) - frames).mean() < 3
    assert files_in(tmp_path) == ["frames"]


def test_video_functions_are_reexported_by_formats():
    for name in ("read_video", "iter_video", "video_info", "write_video", "write_frames", "read_image",
                 "iter_frame_images"):
        assert getattr(formats, name) is getattr(video_io, name) and name in formats.__all__


def test_read_image_converts_to_rgb(tmp_path):
    from PIL import Image

    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(gray[..., None], 3, axis=-1))
    rgba = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba[..., :3])


# ----------------------------------------------------------------------------------------------
# Error paths: one InputError naming the file
# ----------------------------------------------------------------------------------------------
def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def minimal_pt18(**annotation) -> dict:
    ann = {"image_id": 12, "track_id": 0, "keypoints": [0] * 51, "scores": []}
    ann.update(annotation)
    return {"images": [{"file_name": "x/000001_mpii_x/000000.jpg", "id": 12}], "annotations": [ann]}


@pytest.mark.parametrize("loader", [load_posetrack, load_posetrack17, load_posetrack18, load_coco_keypoints])
def test_error_missing_file(tmp_path, loader):
    with raise_match(tmp_path / "nope.json", "not found"):
        loader(tmp_path / "nope.json")


def test_error_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [\n  {"id": 1,}\n]}')
    with raise_match(path, "not valid JSON", "line 2, column"):
        load_posetrack(path)
    path.write_bytes(b"\xff\xfe\x00binary")
    with raise_match(path, "UTF-8"):
        load_posetrack18(path)


def test_error_wrong_shape(tmp_path):
    with raise_match(write_json(tmp_path / "a.json", {"foo": 1}), "'annolist'", "'images'", "['foo']"):
        load_posetrack(tmp_path / "a.json")
    with raise_match(write_json(tmp_path / "b.json", [1, 2]), "a JSON list"):
        load_posetrack18(tmp_path / "b.json")
    with raise_match(write_json(tmp_path / "c.json", {"annolist": []}), "load_posetrack17"):
        load_posetrack18(tmp_path / "c.json")
    with raise_match(write_json(tmp_path / "d.json", [{"image_id": 1, "bbox": [0, 0, 1, 1]}]), "results list"):
        load_coco_keypoints(tmp_path / "d.json")
    with raise_match(write_json(tmp_path / "e.json", {"images": []}), "missing ['annotations', 'categories']"):
        load_coco_keypoints(tmp_path / "e.json")
    with raise_match(write_json(tmp_path / "f.json", minimal_pt18()), "categories"):
        load_coco_keypoints(tmp_path / "f.json")


def test_error_keypoint_count(tmp_path):
    path = write_json(tmp_path / "k.json", minimal_pt18(keypoints=[1] * 48))
    with raise_match(path, "annotation 0 of image 12 has 48 keypoint numbers, expected 51 (17 x 3)"):
        load_posetrack18(path)
    path = write_json(tmp_path / "s.json", minimal_pt18(scores=[0.5] * 16))
    with raise_match(path, "scores has 16 numbers, expected 17"):
        load_posetrack18(path)
    path = write_json(tmp_path / "n.json", minimal_pt18(keypoints=["a"] * 51))
    with raise_match(path, "must be a list of numbers"):
        load_posetrack18(path)


def test_error_track_id(tmp_path):
    data = minimal_pt18()
    del data["annotations"][0]["track_id"]
    with raise_match(write_json(tmp_path / "t.json", data), "annotation 0 of image 12 has no track_id"):
        load_posetrack18(tmp_path / "t.json")
    with raise_match(write_json(tmp_path / "u.json", minimal_pt18(track_id="a")), "must be an integer"):
        load_posetrack18(tmp_path / "u.json")
    pt17 = {"annolist": [{"image": [{"name": "a.jpg"}], "annorect": [{"x1": [1], "y1": [1], "x2": [2], "y2": [2]}]}]}
    with raise_match(write_json(tmp_path / "v.json", pt17), "annorect 0 has no track_id"):
        load_posetrack17(tmp_path / "v.json")


def test_error_inconsistent_references(tmp_path):
    with raise_match(write_json(tmp_path / "a.json", minimal_pt18(image_id=99)), "image_id 99"):
        load_posetrack18(tmp_path / "a.json")
    data = minimal_pt18()
    data["images"].append(dict(data["images"][0]))
    with raise_match(write_json(tmp_path / "b.json", data), "image id 12 appears twice"):
        load_posetrack18(tmp_path / "b.json")
    data = minimal_pt18()
    data["images"][0].update(ignore_regions_x=[[1, 2, 3]], ignore_regions_y=[[1, 2]])
    with raise_match(write_json(tmp_path / "c.json", data), "ignore_regions_x"):
        load_posetrack18(tmp_path / "c.json")
    point = {"id": [15], "x": [1], "y": [2]}
    rect = {"track_id": [0], "annopoints": [{"point": [point]}]}
    pt17 = {"annolist": [{"image": [{"name": "a.jpg"}], "annorect": [rect]}]}
    with raise_match(write_json(tmp_path / "d.json", pt17), "point id 15"):
        load_posetrack17(tmp_path / "d.json")


def test_error_poseval_checks_on_save(tmp_path):
    rng = np.random.default_rng(0)
    video = random_video(rng, name="000001_synth_val", num_frames=1)
    with raise_match(tmp_path / "a.json", "would crash poseval", "check_poseval=False"):
        save_posetrack18(video, tmp_path / "a.json")
    save_posetrack17(video, tmp_path / "a17.json")  # PoseTrack17 names are not parsed
    video = Video("000001_mpii", [Frame("000001_mpii/000000.jpg", people=[random_person(rng, 3, True)] * 2)])
    with raise_match(tmp_path / "b.json", "repeats a track id"):
        save_posetrack18(video, tmp_path / "b.json")
    video.frames[0].people = [random_person(rng, 10000, True)]
    with raise_match(tmp_path / "c.json", "track_id < 10000"):
        save_posetrack17(video, tmp_path / "c.json")
    assert files_in(tmp_path) == ["a17.json"]


def test_error_video_inputs(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with raise_match(junk, "OpenCV cannot open"):
        read_video(junk)
    with raise_match(tmp_path / "none.mp4", "not found"):
        iter_video(tmp_path / "none.mp4")
    with raise_match(tmp_path / "none.mp4", "not found"):
        video_info(tmp_path / "none.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    with raise_match(empty, "empty folder of frames"):
        read_video(empty)
    bad_image = tmp_path / "bad.jpg"
    bad_image.write_bytes(b"\x00" * 10)
    with raise_match(bad_image, "cannot read the image"):
        read_image(bad_image)
    with raise_match(tmp_path / "missing.png", "image file not found"):
        read_image(tmp_path / "missing.png")
    mixed = tmp_path / "mixed"
    write_frames(np.zeros((1, 4, 4, 3), np.uint8), mixed, ext=".png")
    from PIL import Image
    Image.new("RGB", (5, 4)).save(mixed / "000001.png")
    with raise_match(mixed / "000001.png", "one size"):
        read_video(mixed)
    video = Video("v", [Frame("sub/000000.jpg")])
    with raise_match(tmp_path / "sub" / "000000.jpg", "frame 0 of video 'v'"):
        iter_frame_images(video, tmp_path)


def test_error_video_outputs(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with raise_match(tmp_path / "a.mov", "unknown video ending"):
        write_video(frames, tmp_path / "a.mov")
    with raise_match(tmp_path / "b.mp4", "float64", "astype(np.uint8)"):
        write_video(frames.astype(float), tmp_path / "b.mp4")
    with raise_match(tmp_path / "c.gif", "no frames"):
        write_video([], tmp_path / "c.gif")
    with raise_match(tmp_path / "d", "unknown image ending"):
        write_frames(frames, tmp_path / "d", ext=".tif")
    with raise_match(tmp_path / "e.mp4", "frame 1 has shape"):
        write_video([frames[0], np.zeros((4, 8, 3), np.uint8)], tmp_path / "e.mp4")
    assert files_in(tmp_path) == []


# ----------------------------------------------------------------------------------------------
# Atomicity: a failed write leaves no partial file and an existing destination untouched
# ----------------------------------------------------------------------------------------------
def test_atomic_json_on_unserialisable_value(tmp_path):
    path = tmp_path / "000042_mpii_synth.json"
    path.write_text("previous content")
    video = random_video(np.random.default_rng(0))
    video.frames[0].people = [random_person(np.random.default_rng(1), 1, True)]
    video.frames[0].people[0].extra["bad"] = object()
    with raise_match(path, "cannot write JSON"):
        save_posetrack18(video, path)
    video.frames[0].people[0].extra = {}
    video.frames[0].people[0].scores[0] = np.nan
    with raise_match(path, "NaN"):
        save_posetrack18(video, path)
    assert path.read_text() == "previous content"
    assert files_in(tmp_path) == [path.name]


def test_atomic_json_on_failing_serialiser_and_disk(tmp_path, monkeypatch):
    video = random_video(np.random.default_rng(0))
    path = tmp_path / "000042_mpii_synth.json"
    path.write_text("previous content")

    def broken_dumps(*args, **kwargs):
        raise ValueError("serialiser broke")
    with monkeypatch.context() as patch:
        patch.setattr(formats.json, "dumps", broken_dumps)
        with raise_match(path, "serialiser broke"):
            save_posetrack18(video, path)

    def half_write(self, data):  # the disk fills up halfway through the temporary file
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError("No space left on device")
    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_bytes", half_write)
        with pytest.raises(OSError, match="No space"):
            save_posetrack17(video, path)
        with pytest.raises(OSError, match="No space"):
            save_coco_keypoints(video.frames, path)
    assert path.read_text() == "previous content"
    assert files_in(tmp_path) == [path.name]


def test_atomic_folder_of_json_writes_nothing_on_a_bad_video(tmp_path):
    rng = np.random.default_rng(0)
    good, bad = random_video(rng, name="000001_mpii_a"), random_video(rng, name="000002_mpii_b")
    bad.frames[0].people = [random_person(rng, 1, True)]
    bad.frames[0].people[0].score = float("inf")
    with raise_match(tmp_path / "out" / "000002_mpii_b.json", "NaN/infinity"):
        save_posetrack_folder([good, bad], tmp_path / "out")
    assert not (tmp_path / "out").exists() or files_in(tmp_path / "out") == []


def failing_frames(frames: np.ndarray, fail_at: int):
    for t, frame in enumerate(frames):
        if t == fail_at:
            raise RuntimeError("camera unplugged")
        yield frame


@pytest.mark.parametrize("ending", [".mp4", ".gif"])
def test_atomic_write_video(tmp_path, ending):
    path = tmp_path / f"clip{ending}"
    path.write_bytes(b"previous video")
    frames = smooth_frames(np.random.default_rng(0), 4, 16, 16)
    with pytest.raises(RuntimeError, match="camera unplugged"):
        write_video(failing_frames(frames, 2), path)
    assert path.read_bytes() == b"previous video"
    assert files_in(tmp_path) == [path.name]


def test_atomic_write_frames(tmp_path):
    target = tmp_path / "frames"
    first = smooth_frames(np.random.default_rng(0), 2, 16, 16)
    write_frames(first, target, ext=".png")
    with pytest.raises(RuntimeError, match="camera unplugged"):
        write_frames(failing_frames(first[::-1].repeat(3, axis=0), 4), target, ext=".png")
    with raise_match(target, "frame 0"):
        write_frames([np.zeros((4, 4), np.uint8)], target)
    np.testing.assert_array_equal(read_video(target), first)
    assert files_in(tmp_path) == ["frames"]
