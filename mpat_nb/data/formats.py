"""Annotation files: PoseTrack 2017 / 2018 and COCO keypoints <-> :class:`Video` / :class:`Frame`.

Every reader returns the in-memory types of :mod:`mpat_nb.data.annotations` (keypoints as ``(17, 3)``
x, y, v arrays in the PoseTrack18 slot layout, ``v == 0`` = absent) and every writer takes them back.
Video and image files live in :mod:`mpat_nb.data.video_io`; its functions (``read_video``, ``iter_video``,
``video_info``, ``write_video``, ``write_frames``, ``read_image``, ``iter_frame_images``) are re-exported
here.

Rules shared by all formats (the numbers are the official evaluation's, see ``docs/evaluation.md``):

* **Presence (PoseTrack)**: a keypoint triple ``0, 0, 0`` in a file is absent; any other triple is
  present, even with ``v == 0`` (poseval's rule). In memory a present keypoint always has ``v >= 1``,
  so a file triple ``(x, y, 0)`` is stored as ``(x, y, 1)``. Writers emit ``0, 0, 0`` for every absent
  slot, whatever x, y the array holds there, so the evaluator never sees a stray point.
* **Presence (COCO / CrowdPose)**: COCO's own rule, ``v > 0`` is present (``v == 0`` = not labelled).
* **Errors**: every malformed input raises :class:`~mpat_nb.utils.InputError` naming the file, the
  place in it and, where there is one, the fix.
* **Writes are atomic**: the JSON text is built first (``NaN`` / unserialisable values fail before any
  file is touched), then written to a temporary file that is renamed over the destination.

What each format keeps (everything else is recomputed on write):

* PoseTrack18: image ``file_name, id, width, height, is_labeled, ignore_regions_x/_y``; annotation
  ``track_id, keypoints, scores ([] = None), bbox, bbox_head, score`` and the synthetic-GT fields
  ``keypoints_all`` and ``centre``; unknown annotation fields go to ``Person.extra`` and are written
  back. ``id``, ``category_id``, ``num_keypoints``, ``iscrowd``, ``frame_id``, ``vid_id`` and
  ``nframes`` are regenerated (annotation id = image id x 100 + index, as in the real files).
* PoseTrack17: image name, ``is_labeled``, ignore regions, head box, ``track_id``, person score, joints
  with ``score`` and ``is_visible`` (= v). Not representable (dropped): ears, ``bbox``, width/height,
  image ids (a frame's ``image_id`` becomes its position), scores of absent joints, ``keypoints_all``,
  ``centre``, extras.
* COCO: the original ``(K, 3)`` keypoint array (``extra["coco_keypoints"]``), its category
  (``extra["coco_category"]``) and every other annotation field (``id``, ``area``, ``segmentation``,
  ``iscrowd``, ``num_keypoints``, ``category_id``, ...) in ``Person.extra``, so load -> save -> load is
  lossless. File-level ``info`` / ``licenses`` and image fields other than ``file_name, id, width,
  height`` are not kept.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.data.video_io import (  # re-exported: formats is the one door to files
    iter_frame_images,
    iter_video,
    read_image,
    read_video,
    video_info,
    write_frames,
    write_video,
)
from mpat_nb.skeleton import (
    COCO_KEYPOINT_NAMES,
    KEYPOINT_NAMES_17,
    NUM_JOINTS,
    NUM_KEYPOINTS_17,
    joints_to_slots17,
    slots17_to_joints,
)
from mpat_nb.utils import InputError, atomic_write_text

__all__ = [
    "load_posetrack",
    "load_posetrack17",
    "load_posetrack18",
    "load_posetrack_any",
    "load_posetrack_folder",
    "save_posetrack",
    "save_posetrack17",
    "save_posetrack18",
    "save_posetrack_folder",
    "load_coco_keypoints",
    "save_coco_keypoints",
    "POSETRACK_FORMATS",
    # re-exported from mpat_nb.data.video_io
    "read_video",
    "iter_video",
    "video_info",
    "write_video",
    "write_frames",
    "read_image",
    "iter_frame_images",
]

PathLike = str | os.PathLike

#: The two PoseTrack file formats, as accepted by ``fmt=``.
POSETRACK_FORMATS: tuple[str, ...] = ("posetrack18", "posetrack17")

#: poseval parses image paths: the folder must look like ``<digits>_<mpii|bonn|mpiinew>[_anything]``.
POSEVAL_FOLDER_PATTERN = re.compile(r"^(\d+)_(mpii|bonn|mpiinew)(_.*)?$")
#: poseval offsets track ids by 10000 x (file index), so ids must stay below this.
POSEVAL_MAX_TRACK_ID = 10000
#: Annotation id = image id x this + index in the image (the convention of the real PoseTrack18 files).
ANNOTATIONS_PER_IMAGE = 100
#: Largest JSON file read (bytes): PoseTrack18 val is about 2 MiB a video, COCO train2017 keypoints about 240 MiB.
MAX_JSON_BYTES = 1 << 30

#: The one category of a PoseTrack18 file.
POSETRACK18_CATEGORY: dict = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(KEYPOINT_NAMES_17),
}
#: The category written for people that carry no COCO category of their own.
DEFAULT_COCO_CATEGORY: dict = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(COCO_KEYPOINT_NAMES),
}

# Keypoint name -> 17-slot index. PoseTrack18 files name exactly our slots. COCO-like files share the
# body joints; COCO eyes and ears are *not* head_bottom / head_top (nor our placeholder ears), so they
# stay only in extra["coco_keypoints"]; CrowdPose's "neck" / "head" are head_bottom / head_top.
_PT18_NAME_TO_SLOT: dict[str, int] = {name: slot for slot, name in enumerate(KEYPOINT_NAMES_17)}
_COCO_NAME_TO_SLOT: dict[str, int] = {
    **{name: slot for slot, name in enumerate(KEYPOINT_NAMES_17) if slot not in (3, 4)},
    "neck": KEYPOINT_NAMES_17.index("head_bottom"),
    "head": KEYPOINT_NAMES_17.index("head_top"),
}

# Annotation fields the PoseTrack18 reader interprets or regenerates; all others go to Person.extra.
_PT18_OWN_FIELDS = frozenset({
    "image_id", "track_id", "keypoints", "scores", "bbox", "bbox_head", "score", "keypoints_all",
    "center", "id", "category_id", "num_keypoints", "iscrowd",
})
# Annotation fields the COCO reader turns into Person attributes (everything else goes to extra).
_COCO_OWN_FIELDS = frozenset({"image_id", "keypoints", "bbox", "score", "track_id"})
# Person.extra keys that are format bookkeeping, never written as annotation fields.
_EXTRA_PRIVATE_PREFIX = "coco_"


# ==============================================================================================
# PoseTrack: public API
# ==============================================================================================
def load_posetrack(path: PathLike) -> Video:
    """Read one PoseTrack file, 2017 (``annolist``) or 2018 (``images``) format, told apart by content.

    Returns a :class:`Video` named after the file stem, frames in file order.
    """
    data = _read_json(path)
    if isinstance(data, dict) and "annolist" in data:
        return _pt17_to_video(data, Path(path))
    if isinstance(data, dict) and "images" in data:
        return _pt18_to_video(data, Path(path))
    raise InputError(
        f"{path}: not a PoseTrack file: expected a JSON object with an 'annolist' key (PoseTrack17) "
        f"or an 'images' key (PoseTrack18), found {_describe_top_level(data)}"
    )


def load_posetrack18(path: PathLike) -> Video:
    """Read a PoseTrack 2018 (COCO-like) file: one video, frames in the order of ``images``.

    Keypoints are mapped by the names of the file's category (15 or 17 names, any order, as poseval
    accepts); a file without categories is read in the standard 17-slot order.
    """
    data = _read_json(path)
    if isinstance(data, dict) and "annolist" in data and "images" not in data:
        raise InputError(f"{path}: this is a PoseTrack17 ('annolist') file: use load_posetrack17 or load_posetrack")
    if not isinstance(data, dict) or "images" not in data:
        raise InputError(
            f"{path}: not a PoseTrack18 file: expected a JSON object with 'images', 'annotations' and "
            f"'categories', found {_describe_top_level(data)}"
        )
    return _pt18_to_video(data, Path(path))


def save_posetrack18(video: Video, path: PathLike, *, check_poseval: bool = True) -> None:
    """Write ``video`` as a PoseTrack 2018 file that the official evaluation (poseval) accepts.

    Every frame is listed (also those without people), in order. Image ids are kept when they are
    unique, otherwise renumbered ``sequence number x 10000 + frame index``. With ``check_poseval``
    (default) names and track ids that would crash poseval raise :class:`InputError` first.
    """
    _write_json(path, _video_to_pt18(video, Path(path), check_poseval))


def load_posetrack17(path: PathLike) -> Video:
    """Read a PoseTrack 2017 (``annolist``) file: one video, one ``annolist`` entry per frame.

    Frame ``image_id`` is the frame's position (PoseTrack17 has no image ids); ``width``/``height`` are 0.
    """
    data = _read_json(path)
    if not isinstance(data, dict) or "annolist" not in data:
        is_pt18 = isinstance(data, dict) and "images" in data
        hint = " (this looks like PoseTrack18: use load_posetrack18)" if is_pt18 else ""
        raise InputError(f"{path}: not a PoseTrack17 file: expected a JSON object with an 'annolist' key, "
                         f"found {_describe_top_level(data)}{hint}")
    return _pt17_to_video(data, Path(path))


def save_posetrack17(video: Video, path: PathLike, *, check_poseval: bool = True) -> None:
    """Write ``video`` as a PoseTrack 2017 (``annolist``) file; the head box goes to ``x1, y1, x2, y2``.

    With ``check_poseval`` (default) track ids that poseval rejects raise :class:`InputError` first.
    """
    _write_json(path, _video_to_pt17(video, Path(path), check_poseval))


def save_posetrack(video: Video, path: PathLike, fmt: str = "posetrack18", *, check_poseval: bool = True) -> None:
    """Write ``video`` in ``fmt`` (``"posetrack18"`` or ``"posetrack17"``)."""
    _check_format(fmt)
    _write_json(path, _video_to_json(video, Path(path), fmt, check_poseval))


def load_posetrack_folder(folder: PathLike) -> list[Video]:
    """Read every ``*.json`` of a folder (sorted by name), each in either PoseTrack format."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found" if not folder.exists() else f"{folder}: not a folder")
    paths = sorted(p for p in folder.glob("*.json") if p.is_file())
    if not paths:
        raise InputError(f"{folder}: no .json files in this folder; expected one PoseTrack file per video")
    return [load_posetrack(p) for p in paths]


def load_posetrack_any(path: PathLike) -> list[Video]:
    """Read a PoseTrack file (-> one video) or a folder of them (-> one video per file)."""
    path = Path(path)
    if path.is_dir():
        return load_posetrack_folder(path)
    return [load_posetrack(path)]


def save_posetrack_folder(videos: Iterable[Video], folder: PathLike, fmt: str = "posetrack18", *,
                          check_poseval: bool = True) -> None:
    """Write each video to ``folder/<video.name>.json`` in ``fmt``.

    All files are serialised before the first one is written, so a bad video writes nothing; each file
    is then replaced atomically. Other files in the folder are left alone.
    """
    _check_format(fmt)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    texts: dict[Path, str] = {}
    for video in videos:
        path = folder / f"{video.name}.json"
        if path in texts:
            raise InputError(f"{path}: two videos are named {video.name!r}; video names must be unique in a folder")
        texts[path] = _to_json_text(_video_to_json(video, path, fmt, check_poseval), path)
    for path, text in texts.items():
        atomic_write_text(path, text)


# ==============================================================================================
# COCO keypoints: public API
# ==============================================================================================
def load_coco_keypoints(path: PathLike) -> list[Frame]:
    """Read a COCO keypoint file (COCO, OCHuman, CrowdPose, ...): one :class:`Frame` per image.

    Keypoints are mapped into the PoseTrack18 slots *by name*: the body joints are copied, CrowdPose's
    ``neck`` / ``head`` become ``head_bottom`` / ``head_top``, COCO eyes and ears stay absent. People
    without keypoints are kept (no present slot). ``track_id`` is the file's, else the index in the image.
    """
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, list):
        raise InputError(f"{path}: this is a COCO results list (detections or predictions), not a keypoint "
                         "annotation file with 'images', 'annotations' and 'categories'")
    missing = [key for key in ("images", "annotations", "categories")
               if not isinstance(data, dict) or key not in data]
    if missing:
        raise InputError(f"{path}: not a COCO keypoint file: missing {missing}; found {_describe_top_level(data)}")
    categories = {cat.get("id"): cat for cat in _list_of_dicts(data["categories"], path, "categories")
                  if "keypoints" in cat}
    frames = _frames_by_id(
        [Frame(file_name=str(_field(image, "file_name", path, f"image {i}")),
               image_id=_as_int(_field(image, "id", path, f"image {i}"), f"{path}: image {i} id"),
               width=int(image.get("width", 0)), height=int(image.get("height", 0)))
         for i, image in enumerate(_list_of_dicts(data["images"], path, "images"))], path)
    for i, ann in enumerate(_list_of_dicts(data["annotations"], path, "annotations")):
        frame = _frame_of_annotation(frames, ann, i, path)
        where = f"{path}: annotation {i} of image {frame.image_id}"
        category = categories.get(ann.get("category_id"))
        if category is None:
            raise InputError(f"{where} has category_id {ann.get('category_id')!r}, which is not a category with a "
                             f"'keypoints' list in this file (those are {sorted(categories)})")
        names = category["keypoints"]
        raw = _keypoint_array(ann.get("keypoints") or [0] * (3 * len(names)), len(names), where)
        coco_present = raw[:, 2] > 0                          # COCO rule: v > 0 is labelled
        source, slot = _slot_mapping(names, _COCO_NAME_TO_SLOT, where, strict=False)
        keypoints = np.zeros((NUM_KEYPOINTS_17, 3))
        keypoints[slot] = np.where(coco_present[source, None], raw[source], 0.0)
        extra = {key: value for key, value in ann.items() if key not in _COCO_OWN_FIELDS}
        extra["coco_keypoints"] = raw
        extra["coco_category"] = category
        frame.people.append(Person(
            keypoints=keypoints,
            track_id=_as_int(ann.get("track_id", len(frame.people)), f"{where}: track_id"),
            bbox=_optional_numbers(ann.get("bbox"), 4, f"{where}: bbox"),
            score=None if ann.get("score") is None else float(ann["score"]),
            extra=extra,
        ))
    return list(frames.values())


def save_coco_keypoints(frames: Iterable[Frame], path: PathLike) -> None:
    """Write frames as a COCO keypoint file (``images``, ``annotations``, ``categories``).

    People read by :func:`load_coco_keypoints` are written back in their own category and keypoint
    layout, with every original field, and with their mapped slots updated from ``Person.keypoints``
    (so edits are kept). Other people get the COCO 17-keypoint person category. ``track_id`` is written.
    """
    path = Path(path)
    frames = list(frames)
    image_ids = [frame.image_id for frame in frames]
    if len(set(image_ids)) != len(image_ids):
        raise InputError(f"{path}: frames have repeated image ids; COCO needs one unique id per image")
    kept_ids = [_as_int(p.extra["id"], f"{path}: annotation id") for f in frames for p in f.people if "id" in p.extra]
    next_id = 1 + max(kept_ids, default=0)
    categories: dict[int, dict] = {}
    annotations = []
    for frame in frames:
        for person in frame.people:
            category = person.extra.get("coco_category", DEFAULT_COCO_CATEGORY)
            if categories.setdefault(category["id"], category) != category:
                raise InputError(f"{path}: two different categories share id {category['id']}")
            annotation = _coco_annotation(person, frame.image_id, category, path)
            if "id" not in annotation:
                annotation["id"], next_id = next_id, next_id + 1
            annotations.append(annotation)
    images = [{"file_name": f.file_name, "id": f.image_id, "width": f.width, "height": f.height} for f in frames]
    categories = categories or {1: DEFAULT_COCO_CATEGORY}
    _write_json(path, {"images": images, "annotations": annotations, "categories": list(categories.values())})


# ==============================================================================================
# PoseTrack18 helpers
# ==============================================================================================
def _pt18_to_video(data: dict, path: Path) -> Video:
    """PoseTrack18 JSON object -> Video (annotations attached by ``image_id``)."""
    names = _pt18_keypoint_names(data, path)
    source, slot = _slot_mapping(names, _PT18_NAME_TO_SLOT, f"{path}: categories", strict=True)
    frames = _frames_by_id([_pt18_frame(image, i, path)
                            for i, image in enumerate(_list_of_dicts(data["images"], path, "images"))], path)
    for i, ann in enumerate(_list_of_dicts(data.get("annotations") or [], path, "annotations")):
        frame = _frame_of_annotation(frames, ann, i, path)
        where = f"{path}: annotation {i} of image {frame.image_id}"
        frame.people.append(_pt18_person(ann, where, names, source, slot))
    return Video(name=path.stem, frames=list(frames.values()))


def _pt18_frame(image: dict, index: int, path: Path) -> Frame:
    """One PoseTrack18 image entry -> Frame (people attached later)."""
    where = f"{path}: image {index}"
    xs = image.get("ignore_regions_x") or []
    ys = image.get("ignore_regions_y") or []
    if len(xs) != len(ys) or any(len(x) != len(y) for x, y in zip(xs, ys)):
        raise InputError(f"{where}: ignore_regions_x and ignore_regions_y must be parallel lists of polygons "
                         f"(got {[len(x) for x in xs]} x-lists and {[len(y) for y in ys]} y-lists)")
    return Frame(
        file_name=str(_field(image, "file_name", path, f"image {index}")),
        image_id=_as_int(_field(image, "id", path, f"image {index}"), f"{where}: id"),
        width=int(image.get("width") or 0),
        height=int(image.get("height") or 0),
        is_labeled=bool(image.get("is_labeled", True)),
        ignore_regions=[np.stack([np.asarray(x, float), np.asarray(y, float)], axis=1) for x, y in zip(xs, ys)],
    )


def _pt18_person(ann: dict, where: str, names: list[str], source: np.ndarray, slot: np.ndarray) -> Person:
    """One PoseTrack18 annotation -> Person, with poseval's presence rule."""
    if "track_id" not in ann:
        raise _missing_track_id(where)
    raw = _keypoint_array(ann.get("keypoints"), len(names), where)
    keypoints = np.zeros((NUM_KEYPOINTS_17, 3))
    keypoints[slot] = _apply_presence_rule(raw)[source]
    scores = None
    if ann.get("scores"):  # GT files carry "scores": [] -> None
        raw_scores = _optional_numbers(ann["scores"], len(names), f"{where}: scores")
        scores = np.zeros(NUM_KEYPOINTS_17)
        scores[slot] = raw_scores[source]
    return Person(
        keypoints=keypoints,
        track_id=_as_int(ann["track_id"], f"{where}: track_id"),
        scores=scores,
        bbox=_optional_numbers(ann.get("bbox"), 4, f"{where}: bbox"),
        bbox_head=_optional_numbers(ann.get("bbox_head"), 4, f"{where}: bbox_head"),
        score=None if ann.get("score") is None else float(ann["score"]),
        keypoints_all=_optional_numbers(ann.get("keypoints_all"), 3 * NUM_KEYPOINTS_17, f"{where}: keypoints_all"),
        centre=_optional_numbers(ann.get("center"), 2, f"{where}: center"),
        extra={key: value for key, value in ann.items() if key not in _PT18_OWN_FIELDS},
    )


def _video_to_pt18(video: Video, path: Path, check_poseval: bool) -> dict:
    """Video -> PoseTrack18 JSON object."""
    if check_poseval:
        _check_poseval(video, path, check_names=True)
    image_ids = _unique_image_ids(video)
    sequence = _sequence_id(video)
    stride = max([ANNOTATIONS_PER_IMAGE] + [10 ** len(str(len(f.people))) for f in video.frames])
    images, annotations = [], []
    for frame, image_id in zip(video.frames, image_ids):
        images.append({
            "file_name": frame.file_name, "id": image_id, "frame_id": image_id, "vid_id": sequence,
            "nframes": len(video.frames), "is_labeled": bool(frame.is_labeled),
            "width": int(frame.width), "height": int(frame.height),
            "ignore_regions_x": [_json_numbers(polygon[:, 0]) for polygon in frame.ignore_regions],
            "ignore_regions_y": [_json_numbers(polygon[:, 1]) for polygon in frame.ignore_regions],
        })
        for index, person in enumerate(frame.people):
            annotations.append(_pt18_annotation(person, image_id, image_id * stride + index))
    return {"categories": [POSETRACK18_CATEGORY], "images": images, "annotations": annotations}


def _pt18_annotation(person: Person, image_id: int, annotation_id: int) -> dict:
    """Person -> PoseTrack18 annotation dict. Absent slots become ``0, 0, 0``; None fields are omitted
    (poseval crashes on a ``null`` box but accepts a missing one)."""
    keypoints = _file_keypoints(person.keypoints)
    annotation = _public_extra(person)
    annotation.update({
        "id": annotation_id, "image_id": image_id, "category_id": 1, "track_id": person.track_id,
        "keypoints": _json_numbers(keypoints),
        "scores": [] if person.scores is None else _json_numbers(person.scores),
        "num_keypoints": int(np.count_nonzero(keypoints[:, 2] > 0)), "iscrowd": False,
    })
    for key, name in (("bbox", "bbox"), ("bbox_head", "bbox_head"), ("keypoints_all", "keypoints_all"),
                      ("center", "centre")):                      # PoseTrack's JSON key, our field name
        value = getattr(person, name)
        if value is not None:
            annotation[key] = _json_numbers(value)
    if person.score is not None:
        annotation["score"] = float(person.score)
    return annotation


def _pt18_keypoint_names(data: dict, path: Path) -> list[str]:
    """Keypoint names of the (first) category that has them; the standard 17 when there is none."""
    for category in data.get("categories") or []:
        if isinstance(category, dict) and "keypoints" in category:
            names = category["keypoints"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise InputError(f"{path}: categories[].keypoints must be a list of names, got {names!r}")
            return names
    return list(KEYPOINT_NAMES_17)


# ==============================================================================================
# PoseTrack17 helpers
# ==============================================================================================
def _pt17_to_video(data: dict, path: Path) -> Video:
    """PoseTrack17 JSON object -> Video; every scalar is unwrapped from its one-element list."""
    annolist = data["annolist"]
    if not isinstance(annolist, list):
        raise InputError(f"{path}: 'annolist' must be a list of frames, got {type(annolist).__name__}")
    frames = []
    for t, entry in enumerate(annolist):
        where = f"{path}: annolist entry {t}"
        if not isinstance(entry, dict):
            raise InputError(f"{where} must be an object, got {type(entry).__name__}")
        image = _unwrap(entry.get("image"), f"{where}: image")
        name = _unwrap(image.get("name") if isinstance(image, dict) else None, f"{where}: image name")
        frames.append(Frame(
            file_name=str(name),
            image_id=t,
            is_labeled=bool(_unwrap(entry["is_labeled"], f"{where}: is_labeled")) if "is_labeled" in entry else True,
            people=[_pt17_person(rect, f"{where}, annorect {k}") for k, rect in enumerate(entry.get("annorect") or [])],
            ignore_regions=[_pt17_polygon(region, f"{where}, ignore region {r}")
                            for r, region in enumerate(entry.get("ignore_regions") or [])],
        ))
    return Video(name=path.stem, frames=frames)


def _pt17_person(rect: dict, where: str) -> Person:
    """One annorect -> Person. ``x1, y1, x2, y2`` is the head box; points are listed joints (present)."""
    if not isinstance(rect, dict) or "track_id" not in rect:
        raise _missing_track_id(where)
    corners = [rect.get(key) for key in ("x1", "y1", "x2", "y2")]
    if any(c is None for c in corners) and not all(c is None for c in corners):
        raise InputError(f"{where}: head box needs all of x1, y1, x2, y2 (or none of them)")
    bbox_head = None
    if corners[0] is not None:
        x1, y1, x2, y2 = (_scalar(c, f"{where}: head box", _as_float) for c in corners)
        bbox_head = np.array([x1, y1, x2 - x1, y2 - y1])
    joints, joint_scores, has_scores = np.zeros((NUM_JOINTS, 3)), np.zeros(NUM_JOINTS), False
    annopoints = rect.get("annopoints") or [{}]
    if not isinstance(annopoints, list):
        raise InputError(f"{where}: annopoints must be a list holding one {{'point': [...]}} object")
    points = (annopoints[0].get("point") or []) if isinstance(annopoints[0], dict) else []
    for point in points:
        joint = _scalar(point.get("id"), f"{where}: point id", _as_int)
        if not 0 <= joint < NUM_JOINTS:
            raise InputError(f"{where}: point id {joint} is not a PoseTrack joint id (0..{NUM_JOINTS - 1})")
        if joints[joint, 2] > 0:
            raise InputError(f"{where}: joint id {joint} is listed twice")
        visible = _scalar(point.get("is_visible", [1]), f"{where}: is_visible", _as_float)
        joints[joint] = (_scalar(point.get("x"), f"{where}: point x", _as_float),
                         _scalar(point.get("y"), f"{where}: point y", _as_float),
                         max(visible, 1.0))  # a listed point is present, whatever is_visible says
        if "score" in point:
            joint_scores[joint], has_scores = _scalar(point["score"], f"{where}: score", _as_float), True
    return Person(
        keypoints=joints_to_slots17(joints),
        track_id=_scalar(rect["track_id"], f"{where}: track_id", _as_int),
        scores=joints_to_slots17(joint_scores[:, None])[:, 0] if has_scores else None,
        bbox_head=bbox_head,
        score=_scalar(rect["score"], f"{where}: score", _as_float) if "score" in rect else None,
    )


def _pt17_polygon(region: dict, where: str) -> np.ndarray:
    """``{"point": [{"x": [x], "y": [y]}, ...]}`` -> (P, 2) polygon."""
    points = region.get("point") if isinstance(region, dict) else None
    if not isinstance(points, list):
        raise InputError(f"{where} must be an object with a 'point' list")
    return np.array([[_scalar(p.get("x"), f"{where}: x", _as_float), _scalar(p.get("y"), f"{where}: y", _as_float)]
                     for p in points]).reshape(-1, 2)


def _video_to_pt17(video: Video, path: Path, check_poseval: bool) -> dict:
    """Video -> PoseTrack17 JSON object (ears, body boxes and synthetic fields are not representable)."""
    if check_poseval:
        _check_poseval(video, path, check_names=False)
    annolist = []
    for t, frame in enumerate(video.frames):
        entry: dict[str, Any] = {
            "image": [{"name": frame.file_name}], "imgnum": [t + 1],
            "is_labeled": [int(bool(frame.is_labeled))],
            "annorect": [_pt17_annorect(person) for person in frame.people],
        }
        if frame.ignore_regions:
            entry["ignore_regions"] = [{"point": [{"x": [x], "y": [y]} for x, y in _json_pairs(polygon)]}
                                       for polygon in frame.ignore_regions]
        annolist.append(entry)
    return {"annolist": annolist}


def _pt17_annorect(person: Person) -> dict:
    """Person -> annorect: head box corners, track id, score and the present joints as points."""
    rect: dict[str, Any] = {"track_id": [person.track_id]}
    if person.bbox_head is not None:
        x, y, w, h = person.bbox_head.tolist()
        rect.update({"x1": [_json_number(x)], "y1": [_json_number(y)],
                     "x2": [_json_number(x + w)], "y2": [_json_number(y + h)]})
    if person.score is not None:
        rect["score"] = [float(person.score)]
    joints = slots17_to_joints(person.keypoints)
    joint_scores = person.joint_scores
    points = []
    for joint in np.flatnonzero(joints[:, 2] > 0):
        x, y, visible = _json_numbers(joints[joint])
        point = {"id": [int(joint)], "x": [x], "y": [y], "is_visible": [visible]}
        if joint_scores is not None:
            point["score"] = [float(joint_scores[joint])]
        points.append(point)
    rect["annopoints"] = [{"point": points}]
    return rect


# ==============================================================================================
# COCO helpers
# ==============================================================================================
def _coco_annotation(person: Person, image_id: int, category: dict, path: Path) -> dict:
    """Person -> COCO annotation in ``category``'s keypoint layout, original fields kept.

    Mapped slots are rewritten only where ``person.keypoints`` differs from what the stored original
    would load as, so an unedited person is written back byte for byte (even ``(x, y, 0)`` triples).
    """
    names = category["keypoints"]
    where = f"{path}: person {person.track_id} of image {image_id}"
    source, slot = _slot_mapping(names, _COCO_NAME_TO_SLOT, where, strict=False)
    original = person.extra.get("coco_keypoints")
    coco = np.zeros((len(names), 3)) if original is None else _keypoint_array(original, len(names), where).copy()
    loaded = np.where(coco[source, 2:3] > 0, coco[source], 0.0)
    current = _file_keypoints(person.keypoints)[slot]
    changed = np.any(current != loaded, axis=1)
    coco[source[changed]] = current[changed]
    annotation = {"id": person.extra["id"]} if "id" in person.extra else {}
    annotation.update({"image_id": image_id, "category_id": category["id"]})
    annotation.update(_public_extra(person))
    annotation.update({"keypoints": _json_numbers(coco), "track_id": person.track_id})
    if changed.any() or "num_keypoints" not in annotation:
        annotation["num_keypoints"] = int(np.count_nonzero(coco[:, 2] > 0))
    annotation.setdefault("iscrowd", 0)
    if person.bbox is not None:
        annotation["bbox"] = _json_numbers(person.bbox)
        if original is None:  # a new person: COCO evaluation sizes GT by area (a read file keeps its own)
            annotation.setdefault("area", float(person.bbox[2] * person.bbox[3]))
    if person.score is not None:
        annotation["score"] = float(person.score)
    return annotation


# ==============================================================================================
# Shared helpers: reading, writing, checking
# ==============================================================================================
def _read_json(path: PathLike) -> Any:
    """Parse a JSON file, turning every failure into one InputError that names the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a .json file (load_posetrack_any reads folders)")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file (a device, pipe or socket); give a .json file")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise InputError(f"{path}: {size / 2**20:.0f} MiB is more than the {MAX_JSON_BYTES // 2**20} MiB an "
                         "annotation file may have; split it into one file per video")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not a UTF-8 text file, so not JSON "
                         f"({error.reason} at byte {error.start})") from error
    except OSError as error:
        raise InputError(f"{path}: cannot read the file: {error.strerror}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from error


def _write_json(path: PathLike, data: Any) -> None:
    """Serialise fully, then write atomically: a failure leaves no file and an old file untouched."""
    atomic_write_text(path, _to_json_text(data, Path(path)))


def _to_json_text(data: Any, path: Path) -> str:
    """Compact JSON text; NaN / infinity / unknown objects raise InputError naming the file."""
    try:
        return json.dumps(data, allow_nan=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}: cannot write JSON: {error} (NaN/infinity or a value that is not a number, "
                         "string, list or dict; check keypoints, scores and Person.extra)") from error


def _json_default(value: Any) -> Any:
    """numpy arrays and scalars -> plain Python for json.dumps."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _video_to_json(video: Video, path: Path, fmt: str, check_poseval: bool) -> dict:
    return (_video_to_pt18 if fmt == "posetrack18" else _video_to_pt17)(video, path, check_poseval)


def _check_format(fmt: str) -> None:
    if fmt not in POSETRACK_FORMATS:
        raise InputError(f"unknown PoseTrack format {fmt!r}; use one of {POSETRACK_FORMATS}")


def _check_poseval(video: Video, path: Path, check_names: bool) -> None:
    """Raise on what would crash or silently break the official evaluation (docs/evaluation.md §3, §10)."""
    sequences = set()
    for t, frame in enumerate(video.frames):
        ids = [person.track_id for person in frame.people]
        if any(not 0 <= i < POSEVAL_MAX_TRACK_ID for i in ids):
            raise InputError(f"{path}: frame {t} has track ids {ids}; poseval needs 0 <= track_id < "
                             f"{POSEVAL_MAX_TRACK_ID} (pass check_poseval=False to write anyway)")
        if len(set(ids)) != len(ids):
            raise InputError(f"{path}: frame {t} repeats a track id ({ids}); poseval rejects that")
        if check_names:
            name = Path(frame.file_name)
            match = POSEVAL_FOLDER_PATTERN.match(name.parent.name)
            if match is None or not name.stem.isdigit() or int(name.stem) > 9999:
                raise InputError(
                    f"{path}: frame {t} file_name {frame.file_name!r} would crash poseval, which parses it: the "
                    "folder must look like '<digits>_mpii[_anything]' (or _bonn, _mpiinew) and the file stem be "
                    "an integer 0..9999, e.g. 'images/val/000042_mpii_synth/000003.jpg'; rename the frames, "
                    "write PoseTrack17 (no name parsing), or pass check_poseval=False")
            sequences.add(match.group(1))
    if len(sequences) > 1:
        raise InputError(f"{path}: frames come from {len(sequences)} sequences {sorted(sequences)}; poseval "
                         "evaluates only the first sequence of a file: write one file per sequence")


def _unique_image_ids(video: Video) -> list[int]:
    """The frames' image ids if unique, else ``sequence number x 10000 + frame index``."""
    ids = [int(frame.image_id) for frame in video.frames]
    if len(set(ids)) == len(ids):
        return ids
    sequence = _sequence_id(video)
    base = int(sequence) * 10000 if sequence.isdigit() else 0
    return [base + t for t in range(len(ids))]


def _sequence_id(video: Video) -> str:
    """The sequence digits (``vid_id``): from the first frame's folder, else the video name."""
    folder = Path(video.frames[0].file_name).parent.name if video.frames else ""
    match = POSEVAL_FOLDER_PATTERN.match(folder) or re.match(r"^(\d+)", video.name)
    return match.group(1) if match else video.name


def _frames_by_id(frames: list[Frame], path: Path) -> dict[int, Frame]:
    by_id: dict[int, Frame] = {}
    for frame in frames:
        if frame.image_id in by_id:
            raise InputError(f"{path}: image id {frame.image_id} appears twice in 'images'; ids must be unique")
        by_id[frame.image_id] = frame
    return by_id


def _frame_of_annotation(frames: dict[int, Frame], ann: dict, index: int, path: Path) -> Frame:
    image_id = ann.get("image_id")
    if image_id not in frames:
        raise InputError(f"{path}: annotation {index} has image_id {image_id!r}, which is not the id of any image "
                         "in 'images'")
    return frames[image_id]


def _slot_mapping(names, table: dict[str, int], where: str, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint names -> (source index into the file's keypoints, 17-slot index) for the known names."""
    unknown = [name for name in names if name not in table]
    if strict and unknown:
        raise InputError(f"{where}: unknown keypoint names {unknown}; expected names from {list(KEYPOINT_NAMES_17)}")
    source = np.array([i for i, name in enumerate(names) if name in table], dtype=np.int64)
    slot = np.array([table[names[i]] for i in source], dtype=np.int64)
    if len(set(slot.tolist())) != len(slot):
        raise InputError(f"{where}: keypoint names {list(names)} name the same joint twice")
    return source, slot


def _apply_presence_rule(raw: np.ndarray) -> np.ndarray:
    """poseval's rule on (K, 3) file triples: ``0, 0, 0`` is absent, anything else present with v >= 1."""
    present = np.any(raw != 0, axis=1)
    keypoints = np.where(present[:, None], raw, 0.0)
    keypoints[present, 2] = np.maximum(keypoints[present, 2], 1.0)
    return keypoints


def _file_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """(17, 3) in-memory keypoints -> what a file holds: absent slots (v <= 0) as ``0, 0, 0``."""
    return np.where(keypoints[:, 2:3] > 0, keypoints, 0.0)


def _public_extra(person: Person) -> dict:
    """Person.extra without the format bookkeeping keys (``coco_*``)."""
    return {key: value for key, value in person.extra.items() if not key.startswith(_EXTRA_PRIVATE_PREFIX)}


def _keypoint_array(values, count: int, where: str) -> np.ndarray:
    """A flat list of ``count x 3`` numbers -> (count, 3) float array, with a counting error message."""
    array = _optional_numbers(values, None, f"{where}: keypoints")
    if array is None or array.size != 3 * count:
        size = 0 if array is None else array.size
        raise InputError(f"{where} has {size} keypoint numbers, expected {3 * count} ({count} x 3)")
    return array.reshape(count, 3)


def _optional_numbers(values, count: int | None, where: str) -> np.ndarray | None:
    """None -> None; a list of finite numbers -> float array (of ``count`` entries if given)."""
    if values is None:
        return None
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be a list of numbers, got {str(values)[:80]}") from None
    if count is not None and array.size != count:
        raise InputError(f"{where} has {array.size} numbers, expected {count}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{where} contains NaN or infinity")
    return array


def _unwrap(value, where: str):
    """PoseTrack17 wraps every scalar in a one-element list: ``[v] -> v`` (a bare ``v`` is accepted)."""
    if isinstance(value, list):
        if len(value) != 1:
            raise InputError(f"{where}: expected a one-element list, got {len(value)} elements")
        value = value[0]
    if value is None:
        raise InputError(f"{where} is missing")
    return value


def _scalar(value, where: str, convert):
    """A PoseTrack17 scalar: unwrapped, then converted with ``_as_int`` / ``_as_float``."""
    return convert(_unwrap(value, where), where)


def _missing_track_id(where: str) -> InputError:
    return InputError(f"{where} has no track_id; PoseTrack needs an integer track_id on every person, "
                      "ground truth and predictions alike")


def _field(entry: dict, key: str, path: Path, where: str):
    if key not in entry:
        raise InputError(f"{path}: {where} has no '{key}'")
    return entry[key]


def _list_of_dicts(value, path: Path, key: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InputError(f"{path}: '{key}' must be a list of objects, got {str(value)[:80]}")
    return value


def _as_int(value, where: str) -> int:
    """An integer (or an integral float); booleans and strings are rejected."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise InputError(f"{where} must be an integer, got {value!r}")


def _as_float(value, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise InputError(f"{where} is NaN or infinity")
    return number


def _json_number(value: float) -> int | float:
    """Integral floats are written as integers (``401`` rather than ``401.0``), as in the real files."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _json_numbers(values: np.ndarray) -> list:
    return [_json_number(v) for v in np.asarray(values, dtype=np.float64).reshape(-1).tolist()]


def _json_pairs(polygon: np.ndarray) -> list[list]:
    return [_json_numbers(point) for point in polygon]


def _describe_top_level(data: Any) -> str:
    if isinstance(data, dict):
        return f"keys {sorted(data)[:10]}"
    return f"a JSON {type(data).__name__}"
