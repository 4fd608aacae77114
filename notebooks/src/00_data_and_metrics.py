# %% [markdown]
# # 00 · Data and metrics: synthetic articulated people, PoseTrack annotations, mAP and MOTA
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mpat-nb/mpat_nb/blob/main/notebooks/00_data_and_metrics.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mpat-nb/mpat_nb/main?labpath=notebooks%2F00_data_and_metrics.ipynb)
#
# **Goal:** know the data every later notebook trains and tests on, and know exactly what the two numbers
# of the paper (mAP and MOTA) measure.
#
# **Prerequisites:** Python and NumPy; nothing about pose estimation.
# **Runtime:** about 1 minute in fast mode (`MPAT_NB_FAST=1`), a few minutes at full size, CPU only.
#
# **You will learn**
# 1. the skeleton: PoseTrack's 17 keypoint slots and the 15 joints the networks predict;
# 2. the articulated body model and its motion programs;
# 3. the hard cases of the paper as generator presets (crowd, interaction, camera motion, fast motion,
#    shot change, occlusion, motion blur), one row of frames each;
# 4. the PoseTrack18 annotation format, and how hidden joints are labelled;
# 5. how PCKh matching, per-joint AP and CLEAR-MOT's MOTA react to jitter, misses, false alarms and
#    identity switches.

# %%
# Setup: installs the package only inside Colab (never reinstalling torch, numpy, matplotlib, ipywidgets).
import sys

if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "git+https://github.com/mpat-nb/mpat_nb.git"], check=True)

# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

from mpat_nb.utils import get_device, is_fast_mode, seed_everything

FAST = is_fast_mode()
seed_everything(0)
device = get_device()
print(f"fast mode: {FAST}, device: {device}")

# %% [markdown]
# ## 1. The skeleton
#
# PoseTrack 2018 files list 17 keypoint *slots* in COCO order, but slots 1 and 2 hold `head_bottom` and
# `head_top` instead of the eyes, and the ears (slots 3 and 4) are never annotated. The official evaluation
# uses the remaining **15 joints** in its own order; so do our networks (K = 15). `mpat_nb.skeleton` is the
# only place that knows both layouts.

# %%
from mpat_nb import skeleton

for k, name in enumerate(skeleton.JOINT_NAMES):
    slot = skeleton.JOINT_TO_SLOT17[k]
    print(f"joint {k:2d} {name:15s} <- slot {slot:2d} ({skeleton.KEYPOINT_NAMES_17[slot]})")
assert skeleton.NUM_JOINTS == 15 and len(skeleton.LIMBS) == 15

# %% [markdown]
# ## 2. The body model
#
# A person is a kinematic tree: a root at the pelvis, a torso, a neck and head, two arms and two legs.
# Each person draws its own proportions and scale (far people are small, near ones large), and a *motion
# program* (walk, run, wave, jump, turn, random smooth) sets the joint angles over time with its own phase
# and speed. Below: one person over the clip, drawn with the skeleton colours and cropped to the region it
# moves through (so the limbs are large enough to see); the white trail is its pelvis path up to that frame.

# %%
from mpat_nb.data.synth import PRESETS, generate_clip
from mpat_nb.viz import draw_video, frame_grid, frame_strip, pick_frames
from mpat_nb.widgets import show_image

SIZE = (160, 160) if FAST else (256, 256)
FRAMES = 12 if FAST else 30

import cv2

single = generate_clip(preset="easy", seed=1, num_frames=FRAMES, size=SIZE, num_people=(1, 1))   # a walker
drawn = draw_video(single.frames, single.video, color_by="joint")
joints = np.stack([f.people[0].joints for f in single.video.frames if f.people])       # (T, K, 3) x, y, v
seen = joints[joints[..., 2] > 0][:, :2]
x0, y0 = np.maximum(seen.min(axis=0) - 12, 0).astype(int)
x1, y1 = np.minimum(seen.max(axis=0) + 12, np.array(SIZE) - 1).astype(int)
pelvis = joints[:, :, :2].mean(axis=1)                                                   # (T, 2) body centre
picks = pick_frames(FRAMES, 6)
crops = []
for t in picks:
    frame = drawn[t].copy()
    trail = pelvis[: t + 1].round().astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(frame, [trail], False, (255, 255, 255), 1, cv2.LINE_AA)
    crop = frame[y0:y1 + 1, x0:x1 + 1]
    scale = 240 / crop.shape[0]
    crops.append(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST))
show_image(frame_strip(crops, labels=[f"t={t}" for t in picks]), title="one person over time (cropped, enlarged)",
           width=14)
plt.show()
travel = np.linalg.norm(pelvis[-1] - pelvis[0])
limbs = np.abs((joints[:, :, :2] - pelvis[:, None]) - (joints[0, :, :2] - pelvis[0])).max()  # pose change, px
print(f"over {FRAMES} frames the pelvis travels {travel:.0f} px and a joint moves up to {limbs:.0f} px around it; "
      f"crop {x1 - x0 + 1} x {y1 - y0 + 1} px of {SIZE[0]} x {SIZE[1]}")
assert travel > 5 and limbs > 10, "the person should walk and move its limbs during the clip"

# %% [markdown]
# ## 3. The paper's hard cases as presets
#
# Each preset turns up one difficulty the paper names. `mixed` draws a random mixture per clip and is the
# default benchmark. Every row is one clip: ground-truth skeletons coloured by **track id** (the same colour
# means the same person across frames).

# %%
HARD_CASES = ["crowd", "interaction", "camera_motion", "fast_motion", "shot_change", "occlusion", "motion_blur", "mixed"]
print("presets:", ", ".join(PRESETS))
clips = {name: generate_clip(preset=name, seed=20 + i, num_frames=FRAMES, size=SIZE) for i, name in enumerate(HARD_CASES)}
rows = []
for name, clip in clips.items():
    drawn = draw_video(clip.frames, clip.video)
    picks = pick_frames(FRAMES, 4 if FAST else 6)
    rows.append(frame_strip([drawn[t] for t in picks], labels=[name if i == 0 else f"t={t}" for i, t in enumerate(picks)]))
show_image(frame_grid(rows), width=12, title="one row per hard case")
plt.show()

# %% [markdown]
# Checks that the presets do what their names say (the unit tests check more):

# %%
def people_per_frame(clip):
    return np.mean([len(f.people) for f in clip.video.frames])

def hidden_fraction(clip):
    hidden = total = 0
    for frame in clip.video.frames:
        for person in frame.people:
            every = person.keypoints_all[:, 2] > 0
            total += every.sum()
            hidden += (every & ~person.present).sum()
    return hidden / max(total, 1)

for name, clip in clips.items():
    print(f"{name:14s} people/frame {people_per_frame(clip):4.1f}   hidden joints {100 * hidden_fraction(clip):5.1f} %")
assert people_per_frame(clips["crowd"]) > people_per_frame(clips["interaction"]) - 1e-9
assert hidden_fraction(clips["occlusion"]) > 0.05

# %% [markdown]
# ## 4. Annotations: PoseTrack18 JSON
#
# `Clip.save` writes frames and one PoseTrack18 JSON file per clip, exactly what the official tool reads.
# A joint is written only when it is **visible**: visibility comes from the rendered instance mask, so a
# joint behind another person is absent (`0, 0, 0`), as in PoseTrack. Synthetic files also keep
# `keypoints_all` (every joint, hidden ones with `v = 1`) and the person `centre` for the dense targets
# of later notebooks.

# %%
import json
import tempfile
from pathlib import Path

from mpat_nb.data.formats import load_posetrack18

clip = clips["occlusion"]
folder = Path(tempfile.mkdtemp())
clip.save(folder)
path = folder / "annotations" / f"{clip.video.name}.json"
data = json.loads(path.read_text())
annotation = data["annotations"][0]
print({k: annotation[k] for k in ("image_id", "track_id", "bbox", "bbox_head", "center")})
print("keypoints (x, y, v) of the first 3 slots:", annotation["keypoints"][:9])
reloaded = load_posetrack18(path)
assert reloaded.name == clip.video.name and len(reloaded.frames) == len(clip.video.frames)
np.testing.assert_allclose(reloaded.frames[0].people[0].keypoints, clip.video.frames[0].people[0].keypoints, atol=1e-3)

# %% [markdown]
# The instance mask next to the frame: each person's pixels carry its track id + 1; a joint is visible
# when the mask at its pixel belongs to its own person.

# %%
from mpat_nb.viz import draw_frame, label_mask

t = len(clip.frames) // 2
show_image(frame_strip([clip.frames[t], label_mask(clip.instance_masks[t]),
                        draw_frame(clip.frames[t], clip.video.frames[t])],
                       labels=["frame", "instance mask", "visible joints"]), width=10)
plt.show()

# %% [markdown]
# ## 5. Metrics: what mAP and MOTA measure
#
# **PCKh matching.** A predicted joint $\hat{x}$ is correct for a ground-truth person $g$ when
# $\lVert \hat{x} - x_g \rVert \le 0.5\, h_g$, with the head size $h_g = 0.6\,\lVert(w, h)\rVert$ of $g$'s head
# box. Per frame each prediction keeps its best ground-truth person (by the fraction of matched joints),
# and each ground-truth person takes its best remaining prediction.
#
# **AP per joint** ranks all predicted joints of the data set by score; a joint is a true positive when its
# person was matched and the joint is correct; $\mathrm{AP}_j$ is the area under the interpolated
# precision-recall curve, and **mAP** the mean over the 15 joints.
#
# **MOTA per joint** (CLEAR-MOT): over all frames, with $\mathrm{FN}$ misses, $\mathrm{FP}$ false alarms,
# $\mathrm{IDSW}$ identity switches and $\mathrm{GT}$ ground-truth joints,
# $$\mathrm{MOTA} = 1 - \frac{\mathrm{FN} + \mathrm{FP} + \mathrm{IDSW}}{\mathrm{GT}}.$$
# The official tool drops the last frame of every sequence and counts an empty prediction frame as one
# miss plus one false positive per joint; `mpat_nb.evaluate` reproduces these rules.
#
# MOTA is bounded above by 100 but not below: misses and switches are at most as many as the ground-truth
# joints, false alarms are not, so a tracker that reports more wrong joints than there are true ones scores
# **below zero** (the false-alarm sweep below goes there).

# %%
from mpat_nb.data.perturb import Perturbation, perturb_video
from mpat_nb.evaluate import evaluate

gt = clips["mixed"].video
print(evaluate(gt, perturb_video(gt, Perturbation(), seed=0)).table())

# %% [markdown]
# Now corrupt the ground truth in one way at a time and watch both numbers.

# %%
def sweep(field, values, seeds=(0, 1) if FAST else (0, 1, 2, 3)):
    maps, motas = [], []
    for value in values:
        results = [evaluate(gt, perturb_video(gt, Perturbation(**{field: value}), seed=s)) for s in seeds]
        maps.append(np.mean([r.total_map for r in results]))
        motas.append(np.mean([r.total_mota for r in results]))
    return np.array(maps), np.array(motas)

SWEEPS = {
    "jitter_px": [0, 1, 2, 4, 8],
    "miss_person_prob": [0, 0.1, 0.2, 0.4],
    "false_positive_prob": [0, 0.25, 0.5, 1.0],
    "id_switches": [0, 1, 2, 4],
}
results = {field: sweep(field, values) for field, values in SWEEPS.items()}

fig, axes = plt.subplots(1, 4, figsize=(14, 3))
for ax, (field, values) in zip(axes, SWEEPS.items()):
    maps, motas = results[field]
    ax.plot(values, maps, "o-", label="mAP")
    ax.plot(values, motas, "s-", label="MOTA")
    ax.set_xlabel(field)
    ax.set_ylabel("score (%)")
    ax.set_title(field.replace("_", " "), fontsize=10)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_ylim(min(0, motas.min() - 5), 105)
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# What the curves show, checked:
# * jitter lowers both numbers (joints fall out of the PCKh radius);
# * missed people lower both; false alarms lower mostly MOTA, and AP only through ranking
#   (their scores are low, so they come last);
# * identity switches leave mAP at 100 (it ignores identities) and lower MOTA only.

# %%
maps, motas = results["jitter_px"]
assert maps[0] == 100 and maps[-1] < maps[0] and motas[-1] < motas[0]
maps, motas = results["id_switches"]
assert np.allclose(maps, 100) and motas[-1] < motas[0]
maps, motas = results["false_positive_prob"]
assert motas[-1] < motas[0]

# %% [markdown]
# ## 6. Explore: scrub through a clip
#
# The slider calls the same drawing function as the static picture below it.

# %%
from mpat_nb.widgets import choice_viewer, frame_scrubber


def draw_clip_frame(t, clip=clips["shot_change"]):
    return draw_frame(clip.frames[t], clip.video.frames[t], show_boxes=True, show_head_boxes=True)

show_image(draw_clip_frame(0), title="shot_change, frame 0")
plt.show()

# %% tags=["NBVAL_IGNORE_OUTPUT"]
frame_scrubber(draw_clip_frame, FRAMES)

# %%
def draw_preset_frame(name, t=0):
    clip = clips[name]
    return draw_frame(clip.frames[t], clip.video.frames[t])

show_image(draw_preset_frame("crowd"), title="crowd, frame 0")
plt.show()

# %% tags=["NBVAL_IGNORE_OUTPUT"]
choice_viewer(draw_preset_frame, HARD_CASES, description="preset")

# %% [markdown]
# ## Summary
# * K = 15 joints in poseval order; files keep PoseTrack18's 17 slots.
# * The generator makes articulated, textured, occluding people with stable identities, and every hard case
#   of the paper as a preset; visibility comes from the rendered instance mask.
# * mAP measures per-frame pose quality (PCKh@0.5, identity-blind); MOTA adds identity: misses, false alarms
#   and switches all count against it.
#
# ## Exercises
# 1. Make a clip with `generate_clip("crowd", seed=..., num_people=(12, 12))`: how do mAP and MOTA react to
#    the same jitter as before, and why (hint: head sizes)?
# 2. Drop only the wrists (`Perturbation` has no such knob: write your own corruption with `Person.keypoints`)
#    and read the per-joint table.
# 3. Run `mpat-nb evaluate --strict` on a corrupted clip and explain the difference in MOTA.
#
# **Next:** [01 · The stacked hourglass](01_hourglass.ipynb).
