# %% [markdown]
# # 02 · Embedding losses: heatmaps, Keypoint Embedding, Spatial Vector Field and ordinal maps
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mpat-nb/mpat_nb/blob/main/notebooks/02_embedding_losses.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mpat-nb/mpat_nb/main?labpath=notebooks%2F02_embedding_losses.ipynb)
#
# **Goal:** know what every map SpatialNet predicts is trained to be, build each target and loss by hand,
# and read the trained network's maps as the paper's Fig. 5 shows them.
#
# **Prerequisites:** [00 · Data and metrics](00_data_and_metrics.ipynb) and
# [01 · The stacked hourglass](01_hourglass.ipynb) (what SpatialNet outputs); PyTorch tensors.
# **Runtime:** about 1.5 minutes in fast mode (`MPAT_NB_FAST=1`), about 2 minutes at full size, CPU only.
#
# **You will learn**
# 1. the heatmap targets and the detection loss $L_{det}$;
# 2. the Keypoint Embedding (KE) loss: *pull* the tags of one person together, *push* the people apart;
# 3. the Spatial Instance Embedding $\mathrm{SIE}(p) = p + v(p)$ and its Spatial Vector Field (SVF) targets;
# 4. the six auxiliary ordinal maps;
# 5. how the paper weighs the four losses, and what a trained SpatialNet predicts for each of them.

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
import torch
from torch.testing import assert_close

from mpat_nb.utils import get_device, is_fast_mode, seed_everything

FAST = is_fast_mode()
seed_everything(0)
device = get_device()
print(f"fast mode: {FAST}, device: {device}")

# %% [markdown]
# ## 1. Four outputs, four losses
#
# For every stack $s$ SpatialNet predicts, on the output grid ($H \times W$, the input / 4):
# $K = 15$ **heatmaps** $H_k$, $K$ scalar **Keypoint Embedding** maps $h_k$, a 2-channel **Spatial Vector
# Field** $v$ and **6 ordinal maps** $o_r$. Each has its own loss, summed over the stacks (intermediate
# supervision), and the supplementary material weighs them as
#
# $$L = 1 \cdot L_{det} + 10^{-3}\, L_{KE} + 10^{-4}\, L_{SIE} + 10^{-4}\, L_{aux}.$$
#
# The targets are made by `mpat_nb.codec.encode_targets`, the losses live in `mpat_nb.losses`. Below, each
# one is first rebuilt by hand in a few lines, compared with the library, and the library is used after.

# %%
from mpat_nb.config import LOSS_WEIGHTS, ORDINAL_RELATIONS, SVF_NORMALISER, get_spatial_config

print("loss weights:", LOSS_WEIGHTS)
assert (LOSS_WEIGHTS["det"], LOSS_WEIGHTS["ke"], LOSS_WEIGHTS["sie"], LOSS_WEIGHTS["aux"]) == (1.0, 1e-3, 1e-4, 1e-4)

# %% [markdown]
# ## 2. One sample frame
#
# We use the `tiny` preset's sizes (input $256 \times 256$, output $64 \times 64$), the ones of the shipped
# checkpoint in sections 7-8, so targets and predictions live on the same grid. The clip comes from
# `data_samples/` when the repository has it, otherwise from the generator with a *validation* seed (never
# seen in training). We take the first frame with three to five people that is sharp (no motion blur) and whose
# people hardly overlap, so that every target below can be read person by person, and a few frames around it.
# `make_sample` letterboxes it into the square input and encodes the targets.

# %%
from pathlib import Path

import cv2

from mpat_nb.data.augment import NO_AUGMENTATION
from mpat_nb.data.datasets import make_sample
from mpat_nb.data.formats import load_posetrack18, read_image
from mpat_nb.tracking.costs import box_iou

TINY = get_spatial_config("tiny")
INPUT, OUTPUT = TINY.input_size, TINY.output_size
CLIP_FRAMES = 4 if FAST else 8


def find_data_samples() -> Path | None:
    """The repository's data_samples/ folder (next to the notebooks or one level up), if it holds clips."""
    for root in (Path("data_samples"), Path("..") / "data_samples"):
        if any((root / "annotations").glob("*.json")):
            return root
    return None


def clear_frame(frames, video, people_range=(3, 5), max_overlap=0.1, min_sharpness=1000.0):
    """The first frame with 3-5 people whose keypoint boxes hardly overlap (summed pairwise IoU) and which is
    sharp (variance of the Laplacian: motion blur lowers it), or None."""
    for t, frame in enumerate(video.frames):
        boxes = np.array([[x, y, x + w, y + h] for person in frame.people
                          if (box := person.keypoint_box()) is not None for x, y, w, h in [box]]).reshape(-1, 4)
        sharpness = cv2.Laplacian(cv2.cvtColor(frames[t], cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
        if (people_range[0] <= len(boxes) <= people_range[1] and sharpness >= min_sharpness
                and np.triu(box_iou(boxes, boxes), k=1).sum() <= max_overlap):
            return t
    return None


def sample_clips():
    """(frames (T, H, W, 3) uint8, Video) of data_samples/'s clips, then of validation-seed 'mixed' clips."""
    root = find_data_samples()
    for path in sorted((root / "annotations").glob("*.json")) if root is not None else []:
        video = load_posetrack18(path)
        yield np.stack([read_image(root / f.file_name) for f in video.frames]), video
    from mpat_nb.data.synth import generate_clip, split_seeds
    for seed in split_seeds("val", 20):
        clip = generate_clip(preset="mixed", seed=int(seed), num_frames=3 * CLIP_FRAMES, size=(256, 256))
        yield clip.frames, clip.video


def load_sample_clip():
    """CLIP_FRAMES frames around the first clear frame of :func:`sample_clips`, and its index among them."""
    for frames, video in sample_clips():
        t = clear_frame(frames, video)
        if t is not None:
            start = int(np.clip(t - CLIP_FRAMES // 2, 0, len(frames) - CLIP_FRAMES))
            video.frames = video.frames[start:start + CLIP_FRAMES]
            return frames[start:start + CLIP_FRAMES], video, t - start
    raise RuntimeError("no clear frame with 3-5 people in the sample clips")


frames, video, T_SHOW = load_sample_clip()
sample = make_sample(frames[T_SHOW], video.frames[T_SHOW].people, NO_AUGMENTATION, INPUT, OUTPUT)
image = (sample["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)   # (INPUT, INPUT, 3)
targets = sample["targets"]
people = targets.person_valid.nonzero().flatten().tolist()
print(f"{video.name}, frame {T_SHOW}: {len(people)} people on the {OUTPUT} x {OUTPUT} grid")
assert len(people) >= 2, "the sample frame should hold at least two people"

# %% [markdown]
# Pictures in this notebook are drawn in **output-grid coordinates**: the input image is stretched over the
# grid so that output pixel $(x, y)$ sits at its centre (pixel-centre convention of `mpat_nb.codec`).
# A few small drawing helpers:

# %%
GRID_EXTENT = (-0.5, OUTPUT - 0.5, OUTPUT - 0.5, -0.5)


def show_on_grid(ax, overlay=None, *, title=None, dim=0.45, **imshow_kwargs):
    """The input image (dimmed) on the output grid, optionally with a map drawn over it."""
    ax.imshow((image * dim).astype(np.uint8) if overlay is not None else image, extent=GRID_EXTENT)
    if overlay is not None:
        handle = ax.imshow(overlay, extent=GRID_EXTENT, **imshow_kwargs)
    ax.set_xlim(-0.5, OUTPUT - 0.5)
    ax.set_ylim(OUTPUT - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return handle if overlay is not None else None


def masked(values, mask):
    """values where mask, NaN elsewhere (matplotlib leaves NaN transparent)."""
    return np.where(np.asarray(mask) > 0, np.asarray(values, dtype=float), np.nan)


def colorbar_below(handle, ax):
    """A horizontal colorbar in a strip under ``ax`` (panels keep their size)."""
    return ax.figure.colorbar(handle, cax=ax.inset_axes([0.1, -0.1, 0.8, 0.045]), orientation="horizontal")


def heat_overlay(ax, heat, *, title=None, vmax=1.0, cmap="magma"):
    """Draw a heatmap over the image with opacity growing with the value; returns a handle for a colorbar."""
    level = np.clip(np.asarray(heat) / vmax, 0, 1)
    rgba = plt.get_cmap(cmap)(level)
    rgba[..., 3] = np.clip(2 * level, 0, 1)                         # background stays see-through
    show_on_grid(ax, rgba, title=title)
    return plt.cm.ScalarMappable(plt.Normalize(0, vmax), cmap)

# %% [markdown]
# ## 3. Heatmaps and $L_{det}$
#
# The target of joint $k$ is the maximum over people $n$ of unnormalised Gaussians around the joints
# $x_{nk}$ (cut to 0 beyond $4\sigma$; $\sigma = 2$ px at $128 \times 128$, so 1 px on our $64 \times 64$ grid):
#
# $$H^*_k(p) = \max_n \exp\!\Big(-\frac{\lVert p - x_{nk}\rVert^2}{2\sigma^2}\Big), \qquad
#   L_{det} = \sum_s \frac{1}{KHW} \sum_{k,p} m(p)\,\big(H_{s,k}(p) - H^*_k(p)\big)^2,$$
#
# with $m(p) = 0$ in ignore regions. Build it for one joint at a sub-pixel position (with a wider
# $\sigma = 1.5$ so the shape shows on a small grid):

# %%
from mpat_nb.codec import encode_targets

sigma, size = 1.5, 24
joint = torch.tensor([10.3, 7.6])                                   # x, y in grid pixels
ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
distance2 = (xs - joint[0]) ** 2 + (ys - joint[1]) ** 2           # ||p - x||^2
by_hand = torch.exp(-distance2 / (2 * sigma ** 2)) * (distance2 <= (4 * sigma) ** 2)

toy_joints = torch.zeros(1, 15, 3)
toy_joints[0, 0, :2], toy_joints[0, 0, 2] = joint, 2.0            # only joint 0 present
library = encode_targets(toy_joints, None, None, size, sigma=sigma).heatmaps[0]
assert_close(library, by_hand)
print("peak", round(by_hand.max().item(), 3), "at pixel", divmod(by_hand.argmax().item(), size)[::-1])

# %% [markdown]
# The loss by hand, for two predictions: all zeros (what the network outputs at initialisation: its
# heatmap head starts at ~0) and the target plus noise. Zero predictions cost the *target energy*
# $\frac{1}{KHW}\sum (H^*)^2$, small because most pixels are background.

# %%
from mpat_nb.losses import detection_loss

gt = targets.heatmaps[None]                                         # (B=1, K, H, W)
mask = targets.heatmap_mask[None]                                   # (B, H, W)
for name, prediction in {"zeros": torch.zeros_like(gt), "target + noise": gt + 0.1 * torch.randn_like(gt)}.items():
    by_hand = (((prediction - gt) ** 2) * mask[:, None]).mean()     # one stack: mean over K, H, W
    library = detection_loss(prediction[:, None], gt, mask)         # (B, S=1, K, H, W)
    assert_close(library, by_hand)
    print(f"L_det({name}) = {library.item():.2e}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
show_on_grid(axes[0], title=f"input {INPUT} x {INPUT}")
handle = heat_overlay(axes[1], targets.heatmaps.max(0).values.numpy(), title="heatmap targets, max over the 15 joints")
fig.colorbar(handle, ax=axes[1], fraction=0.046)
plt.tight_layout()
plt.show()

# %% [markdown]
# Check: every annotated joint has a peak near 1 at its pixel (below 1 only by its sub-pixel offset,
# at most half a pixel per axis: $\exp(-0.5 / (2\sigma^2)) \approx 0.78$ for $\sigma = 1$).

# %%
indices, valid = targets.keypoint_indices[..., 0], targets.keypoint_indices[..., 1].bool()   # (N_max, K)
flat_maps = targets.heatmaps.reshape(15, -1)
peak_values = torch.stack([flat_maps[k, indices[:, k]] for k in range(15)], dim=1)            # (N_max, K)
print(f"{int(valid.sum())} joints, lowest value at a joint pixel {peak_values[valid].min():.3f}")
assert peak_values[valid].min() > np.exp(-0.25) - 1e-6

# %% [markdown]
# ## 4. Keypoint Embedding: pull and push
#
# Each joint type $k$ has a scalar *tag* map $h_k$. Read at the joints of person $n$ (the visible ones,
# $V_n$), the tags should agree; different people should get different tags. With the mean tag
# $\bar h_n = \frac{1}{|V_n|}\sum_{k \in V_n} h_k(x_{nk})$ and $N$ people:
#
# $$L_{pull} = \frac{1}{N}\sum_n \frac{1}{|V_n|}\sum_{k\in V_n}\big(h_k(x_{nk}) - \bar h_n\big)^2, \qquad
#   L_{push} = \frac{1}{2}\cdot\frac{2}{N(N-1)}\sum_{n<n'} \exp\!\big(-(\bar h_n - \bar h_{n'})^2\big),$$
#
# and $L_{KE} = L_{pull} + L_{push}$ (the official Associative Embedding code). Pull is a variance per
# person; push is at most $\frac12$ (all means equal) and fades once people are a tag unit or two apart.
# By hand on toy tags: 3 people, 5 joints each.

# %%
from mpat_nb.losses import ae_pull_push

tags = np.array([[0.10, -0.05, 0.00, 0.05, 0.15],                  # person 0
                 [1.00, 1.20, 0.90, 1.10, 1.05],                    # person 1
                 [1.60, 1.50, 1.70, 1.40, 1.55]])                   # person 2: close to person 1
mean = tags.mean(axis=1)                                            # hbar_n
pull = ((tags - mean[:, None]) ** 2).mean(axis=1).mean()            # L_pull
pairs = np.triu_indices(len(tags), k=1)                             # n < n'
push = 0.5 * np.exp(-(mean[:, None] - mean[None, :]) ** 2)[pairs].mean()   # L_push
print(f"by hand: pull {pull:.4f}, push {push:.4f}")

embeddings = torch.tensor(tags, dtype=torch.float32)[None, :, :, None]      # (B=1, N, K, D=1)
library = ae_pull_push(embeddings, torch.ones(1, 3, 5, dtype=torch.bool))
assert_close(library, (torch.tensor(pull, dtype=torch.float32), torch.tensor(push, dtype=torch.float32)))

# %% [markdown]
# Absent joints (and padded people) take no part, whatever their tag holds, even NaN:

# %%
valid = torch.ones(1, 4, 5, dtype=torch.bool)
valid[0, 0, 4] = False                                              # person 0 lost its last joint
valid[0, 3] = False                                                 # person 3 is padding
padded = torch.cat([embeddings, torch.full((1, 1, 5, 1), float("nan"))], dim=1)
padded[0, 0, 4] = float("nan")
mean_without = np.r_[tags[0, :4].mean(), mean[1:]]
pull_without = np.mean([tags[0, :4].var(), *tags[1:].var(axis=1)])
push_without = 0.5 * np.exp(-(mean_without[:, None] - mean_without[None, :]) ** 2)[pairs].mean()
assert_close(ae_pull_push(padded, valid), (torch.tensor(pull_without, dtype=torch.float32),
                                          torch.tensor(push_without, dtype=torch.float32)))
print("absent joints and padded people are ignored")

# %% [markdown]
# The checks the loss must pass: pull is zero when a person's tags agree, push is $\frac12$ when all
# means coincide and falls as people separate.

# %%
def toy_losses(tags):
    """(pull, push) of tags (N, K), every joint valid."""
    pull, push = ae_pull_push(torch.as_tensor(tags, dtype=torch.float32)[None, ..., None],
                              torch.ones(1, *np.shape(tags), dtype=torch.bool))
    return pull.item(), push.item()


separations = np.linspace(0, 3, 13)
two_people = [toy_losses([[0.0] * 5, [d] * 5]) for d in separations]
pulls, pushes = np.array(two_people).T
assert np.allclose(pulls, 0), "tags that agree within each person must have zero pull"
assert np.isclose(pushes[0], 0.5) and np.all(np.diff(pushes) < 0), "push must fall as the tags separate"
print("push at separations 0, 1, 2, 3:", np.round(pushes[::4], 4))

# %% [markdown]
# ### Move the tags
#
# `plot_toy_tags` moves person 2's tags to `offset` (with its joints spread by `spread`) and redraws its
# tags on a number line, together with pull, push and $L_{KE}$ over every offset. The static picture comes
# first; the widget under it calls the same function. Watch push peak where person 2 lands on another
# person's mean, and pull grow with the spread only.

# %%
TOY_NOISE = np.random.default_rng(0).normal(size=(3, 5))            # fixed joint jitter of each person
TOY_CENTRES = (0.0, 2.5)                                            # persons 0 and 1 stay put
PERSON_COLOURS = ("tab:blue", "tab:orange", "tab:green")


def toy_tags(offset, spread):
    """(3, 5) tags: persons 0 and 1 fixed with spread 0.1, person 2 at offset with the given spread."""
    return np.stack([TOY_CENTRES[0] + 0.1 * TOY_NOISE[0], TOY_CENTRES[1] + 0.1 * TOY_NOISE[1],
                     offset + spread * TOY_NOISE[2]])


def plot_toy_tags(offset=2.2, spread=0.1):
    """Number line of the toy tags and the loss curves over person 2's offset; returns the figure."""
    tags = toy_tags(offset, spread)
    pull, push = toy_losses(tags)
    fig, (line, curves) = plt.subplots(1, 2, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1.2, 1]})
    for n, colour in enumerate(PERSON_COLOURS):
        line.scatter(tags[n], np.full(5, n), color=colour, s=40, label=f"person {n}")
        line.plot([tags[n].mean()] * 2, [n - 0.3, n + 0.3], color=colour, lw=3)
    line.set(xlim=(-1.5, 4.5), ylim=(-0.6, 2.6), yticks=[0, 1, 2], xlabel="tag h_k(x_nk)  (bar: mean tag)",
             title=f"pull {pull:.3f}   push {push:.3f}   L_KE {pull + push:.3f}")
    offsets = np.linspace(-1.5, 4.5, 121)
    sweep = np.array([toy_losses(toy_tags(o, spread)) for o in offsets])
    curves.plot(offsets, sweep[:, 0], label="pull")
    curves.plot(offsets, sweep[:, 1], label="push")
    curves.plot(offsets, sweep.sum(1), "k--", label="L_KE")
    for centre, colour in zip(TOY_CENTRES, PERSON_COLOURS):
        curves.axvline(centre, color=colour, ls=":")                # where person 2 meets person 0 or 1
    curves.axvline(offset, color="tab:green", alpha=0.6)
    curves.set(xlabel="offset of person 2", ylim=(0, None), title=f"losses over the offset (spread {spread})")
    curves.legend(loc="upper right")
    plt.tight_layout()
    return fig


plot_toy_tags(offset=2.2, spread=0.1)
plt.show()

# %% tags=["NBVAL_IGNORE_OUTPUT"]
import ipywidgets as widgets

offset_slider = widgets.FloatSlider(value=2.2, min=-1.5, max=4.5, step=0.1, description="offset",
                                    continuous_update=False)
spread_slider = widgets.FloatSlider(value=0.1, min=0.0, max=1.0, step=0.05, description="spread",
                                    continuous_update=False)
toy_output = widgets.interactive_output(lambda offset, spread: (plot_toy_tags(offset, spread), plt.show()),
                                        {"offset": offset_slider, "spread": spread_slider})
widgets.VBox([widgets.HBox([offset_slider, spread_slider]), toy_output])

# %% [markdown]
# ### From maps to tags
#
# In the network the tags are *read* from the KE maps at the annotated joint pixels;
# `keypoint_indices` holds the flat pixel $y W + x$ of each joint. As a check of that gather, paint
# *ideal* KE maps for the sample frame: map $k$ carries $n + 1$ at the pixel of joint $k$ of person $n$.
# Their pull must be 0 and their push that of the means $1, 2, 3, \dots$

# %%
from mpat_nb.losses import keypoint_embedding_loss

joint_pixel, joint_valid = targets.keypoint_indices.unbind(-1)     # (N_max, K) each
ideal_ke = torch.zeros(15, OUTPUT * OUTPUT)                         # one flat tag map per joint type
for n in people:
    k = joint_valid[n].nonzero().flatten()                          # the joints of person n on the grid
    ideal_ke[k, joint_pixel[n, k]] = n + 1.0                        # h_k(x_nk) = n + 1
ideal_ke = ideal_ke.reshape(1, 1, 15, OUTPUT, OUTPUT)               # (B, S, K, H, W)
pull, push = keypoint_embedding_loss(ideal_ke, targets.keypoint_indices[None])
person_tags = np.array(people) + 1.0                                # hbar_n = n + 1
expected_push = 0.5 * np.exp(-(person_tags[:, None] - person_tags[None, :]) ** 2)[np.triu_indices(len(people), 1)].mean()
print(f"ideal KE map: pull {pull.item():.2e}, push {push.item():.4f} (by hand {expected_push:.4f})")
assert pull.item() < 1e-6 and abs(push.item() - expected_push) < 1e-5

# %% [markdown]
# ## 5. Spatial Instance Embedding and the Spatial Vector Field
#
# KE is learned freely; the SIE is *geometric*: each pixel $p$ of a person should point at that person's
# centre $c_n$ (the mean of its visible joints). The network regresses an offset, the Spatial Vector Field
# $v(p)$, and
#
# $$\mathrm{SIE}(p) = p + v(p), \qquad v^*(p) = \frac{c_n - p}{Z}, \qquad
#   L_{SIE} = \sum_s \frac{\sum_p m(p)\,\lVert v_s(p) - v^*(p)\rVert^2}{\sum_p m(p)},$$
#
# supervised on the pixels $m(p) = 1$ within $r = 2\sigma$ of a visible joint (the nearer joint wins where
# two people's disks overlap), with $Z = 128$ so the targets are $O(0.1)$. By hand for one person:

# %%
size, radius = 24, 2.0
toy_person = torch.zeros(1, 15, 3)
toy_person[0, :3] = torch.tensor([[6.0, 5.0, 2], [12.0, 9.0, 2], [9.0, 17.0, 2]])   # three visible joints
centre = toy_person[0, :3, :2].mean(0)                                               # c_n
ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
near_joint = torch.stack([(xs - x) ** 2 + (ys - y) ** 2 <= radius ** 2 for x, y, _ in toy_person[0, :3]]).any(0)
by_hand = torch.where(near_joint, torch.stack([centre[0] - xs, centre[1] - ys]) / SVF_NORMALISER, 0.0)

toy_targets = encode_targets(toy_person, None, None, size, sigma=1.0, radius=radius)
assert_close(toy_targets.svf, by_hand)
assert_close(toy_targets.svf_mask, near_joint.float())
print(f"{int(near_joint.sum())} labelled pixels, centre {centre.tolist()}")

# %% [markdown]
# On the sample frame, arrows from the labelled pixels to their person's centre (×), one colour per
# person, drawn at full length $Z\,v^*(p)$: they must all land on the centres.

# %%
svf_pixels = targets.svf.numpy() * SVF_NORMALISER                  # (2, H, W) offsets in grid pixels
labelled = targets.svf_mask.numpy() > 0
owner_index = targets.instance_map.numpy() - 1                     # -1 = nobody
centres = targets.centres.numpy()
rows, cols = np.nonzero(labelled & ((np.arange(OUTPUT)[:, None] + np.arange(OUTPUT)[None]) % 2 == 0))
colours = plt.get_cmap("tab10")(owner_index[rows, cols] % 10)              # every other pixel, by owner

fig, axes = plt.subplots(1, 3, figsize=(16, 5.4))
show_on_grid(axes[0], dim=0.6, overlay=np.zeros((OUTPUT, OUTPUT, 4)), title="SVF targets: pixel -> centre")
axes[0].quiver(cols, rows, svf_pixels[0, rows, cols], svf_pixels[1, rows, cols], color=colours,
               angles="xy", scale_units="xy", scale=1, width=0.0025, alpha=0.6)
axes[0].scatter(centres[people, 0], centres[people, 1], marker="x", s=120, c="white", linewidths=3)
for axis, channel in zip(axes[1:], "xy"):
    limit = np.abs(svf_pixels).max()
    handle = show_on_grid(axis, masked(svf_pixels["xy".index(channel)], labelled), cmap="coolwarm",
                          vmin=-limit, vmax=limit, title=f"SVF target, {channel} offset (grid px)")
    fig.colorbar(handle, ax=axis, fraction=0.046)
plt.tight_layout()
plt.show()

# %% [markdown]
# Check: every arrow lands on its owner's centre, $p + Z\,v^*(p) = c_n$, i.e. the *target* SIE is constant
# over each person.

# %%
pixel_xy = np.stack(np.meshgrid(np.arange(OUTPUT), np.arange(OUTPUT), indexing="xy"))      # (2, H, W) x, y
landing = (pixel_xy + svf_pixels)[:, labelled].T                   # SIE*(p) on labelled pixels, (P, 2)
np.testing.assert_allclose(landing, centres[owner_index[labelled]], atol=1e-4)
print(f"all {labelled.sum()} arrows land on one of {len(people)} centres")

# %% [markdown]
# The loss by hand (a masked mean over labelled pixels of the squared vector error), compared with the
# library for a noisy prediction:

# %%
from mpat_nb.losses import svf_loss

svf_gt, svf_mask = targets.svf[None], targets.svf_mask[None]        # (B, 2, H, W), (B, H, W)
prediction = svf_gt + 0.05 * torch.randn_like(svf_gt)
by_hand = (((prediction - svf_gt) ** 2).sum(1) * svf_mask).sum() / svf_mask.sum()
assert_close(svf_loss(prediction[:, None], svf_gt, svf_mask), by_hand)
print(f"L_SIE = {by_hand.item():.2e} (noise std 0.05 per channel -> expected 2 x 0.05^2 = 5e-3)")

# %% [markdown]
# ## 6. Ordinal maps
#
# KE space is very flexible and slow to learn. The paper adds six auxiliary maps that number the people in
# a *spatial order*: left-to-right, top-to-bottom and far-to-near (size: larger is nearer), each in both
# directions. For relation $r$, person $n$ gets its normalised rank
#
# $$o_r(n) = \frac{\mathrm{rank}_r(n)}{\max(N - 1, 1)} \in [0, 1], \qquad o_{\bar r}(n) = 1 - o_r(n),$$
#
# painted on the pixels it owns (the same pixels as the SVF), and
# $L_{aux} = \sum_s \frac{\sum_p m(p)\,\frac16\sum_r (o_{s,r}(p) - o^*_r(p))^2}{\sum_p m(p)}$.
# By hand, the left-to-right ranks are an argsort of an argsort of the centres' $x$:

# %%
from mpat_nb.codec import ordinal_values

xs_of_people = centres[people, 0]
by_hand = np.argsort(np.argsort(xs_of_people, kind="stable"), kind="stable") / max(len(people) - 1, 1)
columns = ordinal_values(targets.centres[people], torch.ones(len(people)))          # (N, 6)
assert_close(columns[:, ORDINAL_RELATIONS.index("left_to_right")], torch.tensor(by_hand, dtype=torch.float32))
assert_close(columns[:, ORDINAL_RELATIONS.index("right_to_left")], 1 - torch.tensor(by_hand, dtype=torch.float32))
print("left-to-right ranks by hand:", np.round(by_hand, 2))

# %%
fig, axes = plt.subplots(2, 3, figsize=(11, 7.2), constrained_layout=True)
ordinal_mask = targets.ordinal_mask.numpy()
for axis, name, values in zip(axes.flat, ORDINAL_RELATIONS, targets.ordinal.numpy()):
    handle = show_on_grid(axis, masked(values, ordinal_mask), cmap="viridis", vmin=0, vmax=1,
                          title=name.replace("_", " "))
fig.colorbar(handle, ax=axes, fraction=0.03)
fig.suptitle("ordinal targets: 0 = first in the order, 1 = last")
plt.show()

# %% [markdown]
# Checks: the two directions of a relation add up to 1 on every painted pixel, and the leftmost person
# gets 0 in `left_to_right`.

# %%
painted = ordinal_mask > 0
ordinal = targets.ordinal.numpy()
for first in range(0, 6, 2):
    np.testing.assert_allclose(ordinal[first][painted] + ordinal[first + 1][painted], 1.0, atol=1e-6)
leftmost = people[int(np.argmin(xs_of_people))]
assert np.allclose(ordinal[0][owner_index == leftmost], 0.0)

# %% [markdown]
# ## 7. All four together
#
# `spatial_loss` adds the four terms with the paper's weights. We compare an untrained `tiny` SpatialNet with
# the **shipped checkpoint** (trained on synthetic `mixed` clips) on a small batch of sample frames. With
# these weights $L_{det}$ dominates the total, so training lowers it first; the embedding terms
# ($10^{-3}$, $10^{-4}$) follow more slowly.

# %%
from mpat_nb.checkpoints import load_spatialnet, shipped_checkpoint
from mpat_nb.codec import collate_targets
from mpat_nb.losses import spatial_loss
from mpat_nb.models.spatialnet import SpatialNet

model = load_spatialnet(shipped_checkpoint("spatialnet_tiny.pt"), device=device)
untrained = SpatialNet("tiny").to(device).eval()
batch = [make_sample(frames[t], video.frames[t].people, NO_AUGMENTATION, INPUT, OUTPUT) for t in range(len(frames))]
batch_images = torch.stack([s["image"] for s in batch]).to(device)
batch_targets = collate_targets([s["targets"] for s in batch]).to(device)

with torch.no_grad():
    losses = {name: spatial_loss(net(batch_images), batch_targets) for name, net in
              {"untrained": untrained, "shipped": model}.items()}
terms = ["det", "ke_pull", "ke_push", "sie", "aux", "total"]
print(f"{'':10s}" + "".join(f"{t:>11s}" for t in terms))
for name, values in losses.items():
    print(f"{name:10s}" + "".join(f"{values[t].item():11.3e}" for t in terms))
weighted = sum(LOSS_WEIGHTS[t] * losses["shipped"][t] for t in ("det", "ke", "sie", "aux"))
assert_close(weighted, losses["shipped"]["total"])
assert losses["shipped"]["det"] < losses["untrained"]["det"], "training should lower the heatmap loss"

# %% [markdown]
# **Why KE pull rises with training.** An untrained network gives every pixel almost the same tag, so each
# person's tags agree with their mean (pull near 0) and every pair of people shares a tag (push near its
# maximum). Training must spread the people apart to lower push; tags that vary at all also vary a little
# within a person, so pull goes up. What grouping needs is push falling by far more than pull rises:

# %%
pull_ratio = losses["shipped"]["ke_pull"].item() / max(losses["untrained"]["ke_pull"].item(), 1e-12)
push_ratio = losses["untrained"]["ke_push"].item() / max(losses["shipped"]["ke_push"].item(), 1e-12)
print(f"from untrained to shipped: KE pull x {pull_ratio:.1f}, KE push / {push_ratio:.1f}")
assert losses["shipped"]["ke_push"] < losses["untrained"]["ke_push"], "training should push people apart"

# %% [markdown]
# ## 8. What the trained network predicts (the paper's Fig. 5)
#
# `mpat_nb.decode.model_maps` runs the network and returns the last stack's maps: heatmaps, KE and the SVF
# in grid pixels; the ordinal maps we take from the network's output directly. KE and ordinal maps are
# trained only near people, and are free (meaningless) elsewhere, so we show them only where the heatmaps
# (max over joints, dilated by 2 pixels) reach a quarter of their highest peak.

# %%
import torch.nn.functional as F

from mpat_nb.decode import model_maps

with torch.no_grad():
    one_image = sample["image"][None].to(device)                   # (1, 3, INPUT, INPUT)
    maps = model_maps(model, one_image)                             # last stack; SVF in grid pixels
    output = model(one_image)                                       # for the ordinal maps and the SIE
heatmaps_pred = maps["heatmaps"][0].cpu()                           # (K, H, W)
ke_pred = maps["ke"][0, ..., 0].cpu().numpy()                       # (K, H, W)
svf_pred = maps["svf"][0].cpu().numpy()                             # (2, H, W)
ordinal_pred = output.ordinal_final[0].cpu().numpy()                # (6, H, W)
heat_max = heatmaps_pred.max(0).values                              # (H, W)
near_people = F.max_pool2d(heat_max[None, None], 5, stride=1, padding=2)[0, 0].numpy() > 0.25 * heat_max.max().item()
ke_average = ke_pred.mean(0)                                        # the average KE over the K joints
print(f"highest heatmap peak {heat_max.max():.2f}; KE / ordinal shown on {near_people.mean():.0%} of the grid")

# %% [markdown]
# Check the SIE equation on the network's own output: `SpatialNetOutput.spatial_instance_embedding` must be
# the pixel grid plus the SVF that `model_maps` returned.

# %%
sie_pred = output.spatial_instance_embedding()[0].cpu().numpy()    # (2, H, W) x, y in grid pixels
np.testing.assert_allclose(sie_pred, pixel_xy + svf_pred, atol=1e-4)   # SIE(p) = p + v(p)

# %%
def plot_fig5():
    """Row 1: frame, heatmaps, average KE, SVF x / y, SIE points; row 2: the six ordinal maps."""
    fig, axes = plt.subplots(2, 6, figsize=(21, 8.2))
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.08, wspace=0.06, hspace=0.35)
    limit = np.abs(svf_pixels).max()                                # the targets' range, for comparison
    show_on_grid(axes[0, 0], title="frame")
    colorbar_below(heat_overlay(axes[0, 1], heat_max.numpy(), title="heatmaps (max over joints)"), axes[0, 1])
    for axis, values, style, title in [
            (axes[0, 2], masked(ke_average, near_people), dict(cmap="turbo"), "average KE (near people)"),
            (axes[0, 3], svf_pred[0], dict(cmap="coolwarm", vmin=-limit, vmax=limit), "SVF x (grid px)"),
            (axes[0, 4], svf_pred[1], dict(cmap="coolwarm", vmin=-limit, vmax=limit), "SVF y (grid px)")]:
        colorbar_below(show_on_grid(axis, values, title=title, **style), axis)
    # the SIE p + v(p) of the labelled pixels, by owner: a good SVF collapses each person onto its centre (x)
    show_on_grid(axes[0, 5], overlay=np.zeros((OUTPUT, OUTPUT, 4)), dim=0.6, title="SIE p + v(p), labelled pixels")
    axes[0, 5].scatter(*sie_pred[:, labelled], s=6, c=plt.get_cmap("tab10")(owner_index[labelled] % 10))
    axes[0, 5].scatter(centres[people, 0], centres[people, 1], marker="x", s=120, c="white", linewidths=3)
    for axis, name, values in zip(axes[1], ORDINAL_RELATIONS, ordinal_pred):
        handle = show_on_grid(axis, masked(values, near_people), cmap="viridis", vmin=0, vmax=1,
                              title=f"ordinal: {name.replace('_', ' ')}")
    colorbar_below(handle, axes[1, -1])
    return fig


plot_fig5()
plt.show()

# %% [markdown]
# How to read the panels of a well-trained network: the heatmaps peak on the joints; the average KE is
# roughly constant over each person and differs between people; SVF x is positive left of a person's centre
# (pointing right) and negative right of it, SVF y likewise from top to bottom; the SIE points of one person
# gather on its centre; the ordinal maps colour whole people by their rank. One number sums up the SVF:
# the mean distance from the annotated joints to their own person's centre, before (the pixel itself) and
# after the SVF moves it (its SIE); a trained SVF makes the second much smaller.

# %%
index = targets.keypoint_indices[people].numpy()                    # (N, K, 2) flat pixel, valid
on_grid = index[..., 1] > 0
flat = index[..., 0][on_grid]                                       # joint pixels y * W + x
owners = np.array(people)[:, None].repeat(15, axis=1)[on_grid]      # whose joint each one is
joint_xy = np.stack([flat % OUTPUT, flat // OUTPUT], axis=1).astype(float)
sie_at_joints = sie_pred[:, flat // OUTPUT, flat % OUTPUT].T        # SIE(p) = p + v(p) at the joints
before = np.linalg.norm(joint_xy - centres[owners], axis=1).mean()
after = np.linalg.norm(sie_at_joints - centres[owners], axis=1).mean()
print(f"mean distance of the annotated joints to their own centre: pixel {before:.1f} px, SIE {after:.1f} px")

# %% [markdown]
# Finally decode the poses (NMS, candidates, KE grouping: notebook 03 goes deeper) and draw them next to
# the ground truth.

# %%
from mpat_nb.decode import predict_people
from mpat_nb.viz import draw_frame, draw_people, frame_strip
from mpat_nb.widgets import show_image

found = predict_people(model, [frames[T_SHOW]], device=device)[0]
print(f"decoded {len(found)} people (ground truth: {len(video.frames[T_SHOW].people)})")
show_image(frame_strip([draw_frame(frames[T_SHOW], video.frames[T_SHOW]), draw_people(frames[T_SHOW], found)],
                       labels=["ground truth", "decoded"]), width=11)
plt.show()
assert all(person.keypoints.shape == (17, 3) for person in found)
assert len(found) >= 1, "the shipped model should decode at least one person in the sample frame"

# %% [markdown]
# The checkpoint records the validation mAP its training measured. At full size we rebuild that very
# validation set (from the training configuration stored in the checkpoint) and must find the same number;
# fast mode scores a single short clip instead.

# %%
import dataclasses

from mpat_nb.checkpoints import load_checkpoint
from mpat_nb.data.synth import validation_clips
from mpat_nb.train import SpatialTrainConfig, validation_map

record = load_checkpoint(shipped_checkpoint("spatialnet_tiny.pt"))
train_config = {**dataclasses.asdict(SpatialTrainConfig()), **record.get("train_config", {})}
recorded_map = record.get("metrics", {}).get("val_map", float("nan"))
val_clips = validation_clips(train_config["synth_preset"], 1 if FAST else train_config["val_clips"],
                                     2 if FAST else train_config["val_frames"], train_config["render_size"])
val_map = validation_map(model, val_clips)
print(f"validation mAP: {val_map:.1f} on {len(val_clips)} clip(s); recorded in the checkpoint: {recorded_map:.1f}")
if not FAST and np.isfinite(recorded_map):
    assert abs(val_map - recorded_map) < 1.0, "the checkpoint's validation mAP should be reproducible"
assert val_map > 5.0, "the shipped checkpoint should score well above an untrained network (0 mAP)"

# %% [markdown]
# ### Explore: one joint at a time
#
# The dropdown picks a joint and shows its predicted heatmap and its own KE map near the joint's peaks
# (colours spread over the 2-98 % range of the tags shown); the static picture comes from the plain
# function the widget calls.

# %%

from mpat_nb.skeleton import JOINT_NAMES
from mpat_nb.widgets import choice_viewer


def colorize(values, cmap, vmin, vmax, alpha):
    """(H, W) grid values drawn over the dimmed input image with opacity alpha (H, W) -> (INPUT, INPUT, 3) uint8."""
    level = np.clip((values - vmin) / max(vmax - vmin, 1e-9), 0, 1)
    colour, alpha = plt.get_cmap(cmap)(level)[..., :3] * 255, np.clip(alpha, 0, 1)[..., None]
    blended = colour * alpha + image[::INPUT // OUTPUT, ::INPUT // OUTPUT] * 0.5 * (1 - alpha)
    return cv2.resize(blended.astype(np.uint8), (INPUT, INPUT), interpolation=cv2.INTER_NEAREST)


def draw_joint_maps(joint_name):
    """Frame, the joint's predicted heatmap, and its KE map where the heatmap reaches a quarter of its peak."""
    k = JOINT_NAMES.index(joint_name)
    heat = heatmaps_pred[k]
    near = F.max_pool2d(heat[None, None], 5, stride=1, padding=2)[0, 0].numpy() > 0.25 * heat.max().item()
    heat, tag = heat.numpy(), ke_pred[k]
    low, high = np.percentile(tag[near] if near.any() else tag, [2, 98])
    return frame_strip([image, colorize(heat, "magma", 0, 1, 2 * heat), colorize(tag, "turbo", low, high, near)],
                       labels=["frame", f"heatmap: {joint_name}", f"KE: {joint_name}"])


show_image(draw_joint_maps("head_top"), width=11)
plt.show()

# %% tags=["NBVAL_IGNORE_OUTPUT"]
choice_viewer(draw_joint_maps, list(JOINT_NAMES), description="joint", width=11)

# %% [markdown]
# ## Summary
# * **Heatmaps**: max-over-people Gaussians per joint, MSE loss $L_{det}$ (weight 1).
# * **KE**: one scalar tag per joint type; pull = variance of a person's tags, push =
#   $\frac12$ mean of $\exp(-d^2)$ between people's mean tags (weight $10^{-3}$).
# * **SIE / SVF**: $\mathrm{SIE}(p) = p + v(p)$ with $v^*(p) = (c_n - p)/Z$ on the pixels near a person's
#   joints; the target SIE is the person's centre, constant over the person (weight $10^{-4}$).
# * **Ordinal maps**: the people's normalised ranks in three spatial orders and their reverses, painted on
#   the same pixels (weight $10^{-4}$).
# * A trained SpatialNet shows all of them: peaked heatmaps, per-person KE, SVF ramps toward the centres
#   and rank-coloured people.
#
# ## Exercises
# 1. The original Associative Embedding paper pushes with a hinge, $\max(0, 1 - |\bar h_n - \bar h_{n'}|)$.
#    Write it in `toy_losses` and compare its curve over the offset with $\exp(-d^2)$: what happens to the
#    gradient when two people are far apart?
# 2. Encode the sample frame with `encode_targets(..., sigma=2)`; which joints start to overlap, and what
#    does it do to $L_{det}$ at initialisation (the target energy)?
# 3. Compute the weighted SIE term with $Z = 1$ (raw pixels) instead of $Z = 128$ for the untrained network:
#    how does it compare with $L_{det}$, and why did we normalise?
# 4. Two people with the same centre $x$: which one is first in `left_to_right`, and in `right_to_left`?
#    Check with `ordinal_values`.
#
# **Next:** [03 · Pose-Guided Grouping](03_pgg_iterations.ipynb).
