# %% [markdown]
# # 01 · The stacked hourglass: residual blocks, recursion, stacking, and a first fit
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mpat-nb/mpat_nb/blob/main/notebooks/01_hourglass.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/mpat-nb/mpat_nb/main?labpath=notebooks%2F01_hourglass.ipynb)
#
# **Goal:** build SpatialNet's backbone, the stacked hourglass, from its two building blocks, check it
# against the library, and watch it learn to find joints on one batch of frames.
#
# **Prerequisites:** [00 · Data and metrics](00_data_and_metrics.ipynb) (the skeleton and the synthetic
# people); PyTorch modules (`nn.Conv2d`, `nn.BatchNorm2d`) and a training loop.
# **Runtime:** about 1.5 minutes in fast mode (`MPAT_NB_FAST=1`), about 8 minutes at full size on a
# 2-core CPU (well under a minute on a GPU).
#
# **You will learn**
# 1. the pre-activation bottleneck residual block, the only building block of the hourglass;
# 2. the recursive hourglass: a full-resolution branch plus a pooled, recursed and upsampled branch;
# 3. stacking with intermediate supervision, and how each stack's prediction is merged into the next;
# 4. the receptive field, computed on paper and measured with gradients (theoretical vs effective);
# 5. what the presets cost (parameters, FLOPs) and where in the hourglass the cost sits;
# 6. to overfit one batch and watch heatmaps appear.

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
# ## 1. The residual block
#
# Every layer of the hourglass is the same block: a **pre-activation bottleneck** (He et al. 2016). With
# $\sigma$ the ReLU, $\mathrm{BN}$ batch normalisation and $W_1, W_2, W_3$ convolutions of size
# $1\times1$, $3\times3$, $1\times1$, a block from $C_\text{in}$ to $C$ channels computes
#
# $$\mathcal{R}(x) = \underbrace{W_3 * \sigma\big(\mathrm{BN}_3\, W_2 * \sigma(\mathrm{BN}_2\, W_1 * \sigma(\mathrm{BN}_1 x))\big)}_{F(x)} \;+\; P\,x \tag{1}$$
#
# * $W_1$ squeezes to $C/2$ channels, $W_2$ mixes space at that width, $W_3$ expands back to $C$: the
#   $3\times3$ conv, the expensive one, runs on half the channels (the *bottleneck*).
# * $P$ is the identity when $C_\text{in} = C$, otherwise a $1\times1$ conv that changes the width.
# * *Pre-activation*: BN and ReLU come **before** each conv, so the skip path $P x$ is never squashed by a
#   ReLU; with $F \approx 0$ the block is the identity, and a deep stack of them starts as a gentle
#   perturbation of the identity, which is what makes 100+ layers trainable.
#
# Shapes: $x$ is $(B, C_\text{in}, H, W)$, $\mathcal{R}(x)$ is $(B, C, H, W)$; no layer changes $H$ or $W$.

# %%
import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """Teaching rebuild of Eq. (1). x: (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        mid_ch = out_ch // 2                                      # the bottleneck width C / 2
        # W1 and W2 have no bias: the BN right after each would cancel it
        self.bn1, self.conv1 = nn.BatchNorm2d(in_ch), nn.Conv2d(in_ch, mid_ch, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid_ch), nn.Conv2d(mid_ch, mid_ch, 3, padding=1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(mid_ch), nn.Conv2d(mid_ch, out_ch, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()   # P

    def forward(self, x):
        y = self.conv1(F.relu(self.bn1(x)))                       # W1 * σ(BN1 x)       (B, C/2, H, W)
        y = self.conv2(F.relu(self.bn2(y)))                       # W2 * σ(BN2 y), 3x3  (B, C/2, H, W)
        y = self.conv3(F.relu(self.bn3(y)))                       # W3 * σ(BN3 y)       (B, C, H, W)
        return y + self.skip(x)                                   # Eq. (1): F(x) + P x

# %% [markdown]
# Checks: the shapes, the parameter count of Eq. (1) worked out by hand (a BN channel has a scale and a
# shift; $W_1, W_2$ have no bias because a BN follows them), and the identity at $F = 0$.

# %%
from mpat_nb.models import count_parameters

x = torch.randn(2, 16, 24, 24)
assert Residual(16, 32)(x).shape == (2, 32, 24, 24)            # width changes, H and W do not
assert Residual(16, 16)(x).shape == (2, 16, 24, 24)


def residual_parameters(c_in, c):
    m = c // 2
    batchnorms = 2 * (c_in + m + m)
    convs = c_in * m + 9 * m * m + (m * c + c)                    # W1, W2, W3 (+ its bias)
    skip = c_in * c + c if c_in != c else 0                       # P
    return batchnorms + convs + skip


for c_in, c in [(16, 32), (32, 32), (256, 256), (256, 384)]:
    assert count_parameters(Residual(c_in, c)) == residual_parameters(c_in, c)
plain = count_parameters(nn.Conv2d(256, 256, 3))
print(f"256 -> 256: residual block {residual_parameters(256, 256):,} parameters, one plain 3x3 conv {plain:,}")

block = Residual(16, 16).eval()
nn.init.zeros_(block.conv3.weight), nn.init.zeros_(block.conv3.bias)
torch.testing.assert_close(block(x), x)                           # F = 0: the block is the identity

# %% [markdown]
# ## 2. The hourglass
#
# An hourglass of depth $n$ and width $C$ keeps an **upper branch** at full resolution and sends a
# **lower branch** down: max-pool by 2, a residual block that widens to $C + \Delta$, a smaller hourglass
# of depth $n-1$ (or one residual at the bottom), a residual back to $C$, and nearest-neighbour upsampling
# by 2. The two branches are **summed**:
#
# $$\mathcal{H}_n(x) = \mathcal{R}^{\text{up}}_{C}(x) \;+\; \mathrm{Up}_2\Big(\mathcal{R}^{\text{out}}_{C+\Delta\to C}\big(\mathcal{I}_n(\mathcal{R}^{\text{in}}_{C\to C+\Delta}(\mathrm{Pool}_2\,x))\big)\Big),
# \qquad \mathcal{I}_n = \begin{cases}\mathcal{H}_{n-1} \text{ (width } C+\Delta) & n > 1\\ \mathcal{R}_{C+\Delta} & n = 1\end{cases} \tag{2}$$
#
# Unrolled, the features go down to $H/2^n$ with $C + n\Delta$ channels and come back up, and at every
# resolution the sum adds back what the upper branch kept: each output pixel mixes fine detail with
# context from the whole coarse grid. That global context is what the embeddings of the next notebooks
# need (two wrists far apart must learn whether they belong to the same person). $H$ and $W$ must be
# multiples of $2^n$. The paper's hourglass has $n = 4$, $C = 256$, $\Delta = 128$, so 768 channels at
# $8 \times 8$; the small presets scale $\Delta$ with the width ($\Delta = C/2$).

# %%
class Hourglass(nn.Module):
    """Teaching rebuild of Eq. (2). x: (B, C, H, W) -> (B, C, H, W), H and W multiples of 2**depth."""

    def __init__(self, depth, channels, increase=0):
        super().__init__()
        inner_channels = channels + increase                      # C + Δ one level down
        self.upper = Residual(channels, channels)                 # full resolution: keeps the detail
        self.pool = nn.MaxPool2d(2)
        self.lower_in = Residual(channels, inner_channels)
        self.inner = (Hourglass(depth - 1, inner_channels, increase) if depth > 1   # the recursion
                      else Residual(inner_channels, inner_channels))                # the bottom
        self.lower_out = Residual(inner_channels, channels)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        lower = self.lower_out(self.inner(self.lower_in(self.pool(x))))     # (B, C, H/2, W/2)
        return self.upper(x) + self.upsample(lower)                         # Eq. (2)

# %% [markdown]
# Check: the output has the input's shape, and, recording every residual block as it runs (a forward
# hook), the features really go down to $H/2^n$ with $C + n\Delta$ channels and back up.

# %%
def trace_residuals(module, x):
    """(kind, resolution, output channels) of every residual block in the order they run."""
    calls = []
    for name, sub in module.named_modules():
        if type(sub).__name__ == "Residual":
            kind = name.split(".")[-1] if name else "block"
            sub.register_forward_hook(lambda m, i, o, kind=kind: calls.append((kind, o.shape[-1], o.shape[1])))
    with torch.no_grad():
        out = module(x)
    return out, calls


hourglass = Hourglass(depth=4, channels=32, increase=16)
out, calls = trace_residuals(hourglass, torch.randn(1, 32, 64, 64))
assert out.shape == (1, 32, 64, 64)
assert min(res for _, res, _ in calls) == 64 // 2**4 and max(ch for _, _, ch in calls) == 32 + 4 * 16
print(" -> ".join(f"{res}px/{ch}ch" for _, res, ch in calls))

# %% [markdown]
# The same trace as a picture: the hourglass on its side. Our `forward` runs the lower branch first, so
# the features dive to $4 \times 4$, widening on the way, and climb back; on the way up each level adds its
# upper branch (orange), which worked on that level's input at that level's resolution.

# %%
def plot_trace(calls, ax):
    styles = {"lower_in": ("tab:blue", "lower_in: pool, widen"), "inner": ("tab:purple", "bottom residual"),
              "lower_out": ("tab:green", "lower_out: narrow (then upsample)"),
              "upper": ("tab:orange", "upper: full resolution, summed")}
    resolution = [res for _, res, _ in calls]
    ax.plot(range(len(calls)), resolution, color="0.8", zorder=0)
    for i, (kind, res, ch) in enumerate(calls):
        colour, label = styles[kind]
        ax.scatter(i, res, s=3 * ch, color=colour, label=label, edgecolor="k", linewidth=0.5)
        ax.annotate(f"{ch}", (i, res), textcoords="offset points", xytext=(0, 10), ha="center", fontsize=8)
    ax.set_yscale("log", base=2)
    ax.set_yticks(sorted(set(resolution)), [f"{r}x{r}" for r in sorted(set(resolution))])
    ax.set_xlabel("residual block, in the order it runs"), ax.set_ylabel("feature grid")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))                           # one legend entry per kind
    ax.legend(unique.values(), unique.keys(), loc="lower right", fontsize=8, markerscale=0.5, frameon=False)
    ax.set_ylim(2.8, 110), ax.set_xlim(-0.7, len(calls) - 0.3)


fig, ax = plt.subplots(figsize=(9, 3.2))
plot_trace(calls, ax)
ax.set_title("Hourglass(depth=4, C=32, Δ=16) on a 64x64 grid (numbers: channels)")
plt.show()

# %% [markdown]
# ### Compare with the library
#
# Our modules use the library's parameter names, so one `state_dict` fits both. We give the library
# modules random BN statistics (so that eval mode is tested too), load their weights into ours and
# compare the outputs in eval and in train mode.

# %%
from mpat_nb.models import hourglass as library


def randomise_batchnorm(module, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator) * 0.1)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
        bn.weight.data.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
        bn.bias.data.copy_(torch.randn(bn.num_features, generator=generator) * 0.1)
    return module


torch.manual_seed(0)
pairs = [(Residual(16, 32), library.Residual(16, 32), torch.randn(2, 16, 24, 24)),
         (Hourglass(4, 32, 16), library.Hourglass(4, 32, 16), torch.randn(2, 32, 64, 64))]
for ours, theirs, x in pairs:
    ours.load_state_dict(randomise_batchnorm(theirs).state_dict())    # strict: every name and shape match
    for train in (False, True):
        ours.train(train), theirs.train(train)
        torch.testing.assert_close(ours(x), theirs(x))
print("our Residual and Hourglass match mpat_nb.models.hourglass")

# %% [markdown]
# They match, so from here on the notebook uses the library's versions.

# %%
# %% [markdown]
# ## 3. Stacking with intermediate supervision
#
# SpatialNet is a **stem** (a $7\times7$ stride-2 conv, residual blocks and a max-pool: image to features
# at stride 4), then $S$ hourglasses in a row. With $x_0 = \mathrm{Stem}(\text{image})$, stack
# $s = 1, \dots, S$ computes
#
# $$f_s = \Phi_s\big(\mathcal{H}^{(s)}(x_{s-1})\big), \qquad \hat{y}_s = V_s f_s, \qquad
# x_s = x_{s-1} + M_s f_s + N_s \hat{y}_s \quad (s < S), \tag{3}$$
#
# where $\Phi_s$ is a residual block plus a $1\times1$ conv-BN-ReLU, $V_s$ a $1\times1$ linear **prediction
# head** with $O = 2K + 2 + 6$ channels ($K = 15$ heatmaps, $K$ Keypoint-Embedding maps, 2 SVF and 6
# ordinal channels; notebook 02 is about all but the first $K$), and $M_s$, $N_s$ $1\times1$ convs that
# **merge** features and predictions back to width $C$. So stack $s+1$ sees what stack $s$ predicted and
# can correct it.
#
# Every stack is supervised (**intermediate supervision**): the detection loss of `docs/method.md` 2.2 compares
# each stack's heatmaps $\hat{H}_{s,k}$ with the Gaussian targets
# $H^*_k(p) = \max_n \exp\!\big(-\lVert p - x_{nk}\rVert^2 / 2\sigma^2\big)$ and sums over the stacks,
#
# $$L_\text{det} = \sum_{s=1}^{S} \frac{1}{B}\sum_{b=1}^{B} \frac{1}{KHW}\sum_{k,p} m(p)\,\big(\hat{H}_{s,k}(p) - H^*_k(p)\big)^2, \tag{4}$$
#
# with $m(p) = 0$ on ignore regions. Gradients thus reach the early stacks directly, not only through
# every later one. At inference only the last stack's output is used.
#
# The shipped `tiny` preset has **one** wide stack (96 channels: on a 2-core CPU width buys more accuracy per
# minute of training than a second stack, see `mpat_nb/config.py`), so to watch stacking we use a narrow
# **two-stack** variant of it, `TWO_STACKS` (32 channels), here and in section 6.
# %%
import dataclasses

from mpat_nb.config import SPATIAL_PRESETS
from mpat_nb.models import Hourglass, Residual, SpatialNet  # noqa: F811 (the library replaces our rebuild)

TWO_STACKS = dataclasses.replace(SPATIAL_PRESETS["tiny"], name="tiny-2-stacks", num_stacks=2, channels=32, increase=16)
net = SpatialNet(TWO_STACKS).eval()
config = net.config
images = torch.rand(2, 3, config.input_size, config.input_size)    # float RGB in [0, 1]
with torch.no_grad():
    output = net(images)
S, K, H = config.num_stacks, config.num_joints, config.output_size
assert output.heatmaps.shape == (2, S, K, H, H) and output.keypoint_embedding.shape == (2, S, K, H, H)
assert output.svf.shape == (2, S, 2, H, H) and output.ordinal.shape == (2, S, 6, H, H)
assert output.features.shape == (2, config.channels, H, H)
print(f"{config.name}: {S} stacks, image {tuple(images.shape[1:])} -> heatmaps {tuple(output.heatmaps_final.shape[1:])}"
      f" per stack, features {tuple(output.features.shape[1:])}")

# %% [markdown]
# Check Eq. (3) by running the library's pieces by hand (`net.backbone` is a `StackedHourglass`; the model
# normalises images with fixed mean and std first):

# %%
backbone = net.backbone
with torch.no_grad():
    x = backbone.stem((images - net.mean) / net.std)                                  # x_0
    predictions = []
    for s in range(backbone.num_stacks):
        features = backbone.features[s](backbone.hourglasses[s](x))                     # f_s
        predictions.append(backbone.predictions[s](features))                           # ŷ_s = V_s f_s
        if s < backbone.num_stacks - 1:
            x = x + backbone.merge_features[s](features) + backbone.merge_predictions[s](predictions[-1])  # Eq. (3)
torch.testing.assert_close(torch.stack(predictions, dim=1)[:, :, :K], output.heatmaps)
torch.testing.assert_close(features, output.features)
print("Eq. (3) by hand == SpatialNet.forward")

# %% [markdown]
# ## 4. Receptive field
#
# Which input pixels can one output pixel see? Walk the layer list from the input: with $r$ the field
# size and $j$ the step between neighbouring features (both in input pixels, starting at $r_0 = j_0 = 1$),
# a layer with kernel $k$ and stride $s$ gives
#
# $$r_\ell = r_{\ell-1} + (k_\ell - 1)\, j_{\ell-1}, \qquad j_\ell = s_\ell\, j_{\ell-1}. \tag{5}$$
#
# In a residual block only the $3\times3$ conv grows the field (the $1\times1$ convs and the skip do not);
# a max-pool has $k = s = 2$; nearest upsampling copies features, so it keeps $r$ (and halves $j$); a sum of
# two branches sees the union of their fields, i.e. the larger one.

# %%
def grow(r, j, kernel, stride=1):
    return r + (kernel - 1) * j, j * stride                       # Eq. (5)


def hourglass_field(r, j, depth):
    upper = grow(r, j, 3)[0]                                      # upper residual
    lower, step = grow(r, j, 2, 2)                                # max-pool
    lower = grow(lower, step, 3)[0]                               # lower_in
    lower = hourglass_field(lower, step, depth - 1) if depth > 1 else grow(lower, step, 3)[0]
    lower = grow(lower, step, 3)[0]                               # lower_out; the upsampling adds nothing
    return max(upper, lower)                                      # the sum sees the union


def receptive_field(config):
    r, j = grow(1, 1, 7, 2)                                       # stem: 7x7 conv, stride 2
    r, j = grow(*grow(r, j, 3), 2, 2)                             # residual, max-pool
    r, j = grow(*grow(r, j, 3), 3)                                # two residuals
    for _ in range(config.num_stacks):
        r = grow(hourglass_field(r, j, config.hourglass_depth), j, 3)[0]   # hourglass + the features' residual
    return r

# %% [markdown]
# We compare one-stack networks of growing hourglass depth (`tiny` is the depth-4 one), two stacks, and the
# paper's layer list
# (4 stacks of depth 4). The receptive field depends only on kernels and strides, not on widths, so the
# "paper layers" model keeps the paper's layers at tiny widths and runs on a CPU.

# %%
tiny = SPATIAL_PRESETS["tiny"]
paper_layers = dataclasses.replace(SPATIAL_PRESETS["paper"], channels=32, increase=16, stem_channels=16,
                                   input_size=256, output_size=64)
VARIANTS = {
    "depth 1, 1 stack": dataclasses.replace(tiny, num_stacks=1, hourglass_depth=1),
    "depth 2, 1 stack": dataclasses.replace(tiny, num_stacks=1, hourglass_depth=2),
    "tiny: depth 4, 1 stack": tiny,
    "depth 4, 2 stacks": TWO_STACKS,
    "paper layers: depth 4, 4 stacks": paper_layers,
}
fields = {name: receptive_field(cfg) for name, cfg in VARIANTS.items()}
for name, field in fields.items():
    print(f"{name:32s} theoretical receptive field {field:5d} px")
assert fields["depth 1, 1 stack"] < fields["tiny: depth 4, 1 stack"] < fields["depth 4, 2 stacks"]

# %% [markdown]
# Now measure it. Backpropagate from **one output pixel** (the centre of the heatmaps, summed over
# joints) to the input image: the input pixels with a non-zero gradient are the field the network
# really has, and the gradient magnitude shows how much each one matters. We use freshly initialised
# networks in eval mode (so the images of the batch do not interact through BN) and average over a few
# random images (max-pooling routes each gradient to one pixel of its 2x2 window, which leaves holes).

# %%
def gradient_map(model, size=256, samples=2 if FAST else 4, seed=0):
    """|d heatmaps(centre pixel) / d image| of an eval-mode model, summed over colours and images: (size, size)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(samples, 3, size, size, generator=generator).to(next(model.parameters()).device)
    images.requires_grad_(True)
    heatmaps = model(images).heatmaps_final                       # (B, K, H, W)
    centre = heatmaps.shape[-1] // 2
    heatmaps[:, :, centre, centre].sum().backward()
    return images.grad.abs().sum(dim=(0, 1)).cpu()


def support_and_radius(gradient, mass=0.9):
    """Side and centre (x, y) of the box of non-zero gradient; radius around the centroid holding `mass`, centroid."""
    rows, cols = torch.nonzero(gradient, as_tuple=True)
    side = max(int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1)
    box_centre = (float(cols.max() + cols.min()) / 2, float(rows.max() + rows.min()) / 2)
    ys, xs = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in gradient.shape), indexing="ij")
    weights = gradient / gradient.sum()
    centroid = (float((weights * xs).sum()), float((weights * ys).sum()))
    distance = torch.hypot(xs - centroid[0], ys - centroid[1]).flatten()
    order = distance.argsort()
    inside = weights.flatten()[order].cumsum(0) >= mass
    return side, box_centre, float(distance[order][inside][0]), centroid


torch.manual_seed(0)
gradients = {name: gradient_map(SpatialNet(cfg).eval()) for name, cfg in VARIANTS.items()}
measured = {name: support_and_radius(g) for name, g in gradients.items()}

# %% [markdown]
# The picture, one panel per network: $\log_{10}$ of the gradient magnitude, from $10^{-6}$ of its maximum
# or less (black) to the maximum (white); light grey where the gradient is exactly zero. The dashed square
# is the theoretical field of Eq. (5) (clipped by the 256-pixel image), the green circle holds 90 % of the
# gradient.

# %%
def plot_gradient(name, ax):
    gradient, size = gradients[name].numpy(), gradients[name].shape[-1]
    cmap = plt.get_cmap("magma").copy()
    cmap.set_bad("0.85")                                          # zero gradient: outside the field
    relative = np.maximum(gradient / gradient.max(), 1e-6)
    ax.imshow(np.where(gradient > 0, np.log10(relative), np.nan), cmap=cmap, vmin=-6, vmax=0)
    side, (x, y), radius, centroid = measured[name]
    half = fields[name] / 2                                       # the theoretical square, on the measured box
    ax.add_patch(plt.Rectangle((x - half, y - half), 2 * half, 2 * half, fill=False, ls="--", color="tab:blue"))
    ax.add_patch(plt.Circle(centroid, radius, fill=False, color="lime", lw=1.5))
    ax.set_xlim(-0.5, size - 0.5), ax.set_ylim(size - 0.5, -0.5), ax.set_axis_off()
    ax.set_title(f"{name}\ntheory {fields[name]} px, support {side} px\n90% within r = {radius:.0f} px", fontsize=9)


fig, axes = plt.subplots(1, len(VARIANTS), figsize=(3 * len(VARIANTS), 3.6))
for name, ax in zip(VARIANTS, axes):
    plot_gradient(name, ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# What the picture shows, checked below:
# * where Eq. (5) gives a field smaller than the image (depth 1 and 2), the measured support matches it
#   to within a few pixels (which pixels a pooled feature covers depends on where the output pixel
#   sits on the pooling grid);
# * from depth 3 on, the theoretical field is larger than the whole 256-pixel image: every output pixel of
#   `tiny` can in principle see everything;
# * but the **effective** field (the circle) is far smaller and roughly Gaussian (Luo et al. 2016): at
#   initialisation most of the gradient flows through the short paths, the skips and upper branches.
#   The deeper hourglass widens it. Training widens it further where context helps (exercise 2).

# %%
for name, (side, _, radius, _) in measured.items():
    expected = min(fields[name], 256)
    assert expected - 16 <= side <= expected, (name, side, expected)
    assert 2 * radius < side / 2, (name, radius)                  # effective << theoretical
assert measured["tiny: depth 4, 1 stack"][2] > measured["depth 1, 1 stack"][2]

# %% [markdown]
# ## 5. What the presets cost
#
# `preset_table` counts parameters and forward FLOPs (2 x multiply-adds of the convolutions, on a
# `meta`-device model, so even `paper` costs neither memory nor time):

# %%
from mpat_nb.models import estimate_flops, preset_table

print(preset_table())

# %% [markdown]
# Where in the hourglass does the cost sit? A weight at level $\ell$ (grid $H/2^\ell$) is used once per
# output pixel, so its FLOPs are about $2 \times \text{params} \times (H/2^\ell)^2$. Widths grow with depth
# ($C + \ell\Delta$) while grids shrink 4x per level: the parameters sit at the bottom, the compute at the
# two finest levels (level 1 has three blocks: `lower_in`, `lower_out` and the inner `upper`).

# %%
def cost_per_level(config):
    """Parameters and conv FLOPs (2 x params x pixels) of one hourglass, per level (0 = full grid)."""
    levels = config.hourglass_depth + 1
    params, flops = np.zeros(levels), np.zeros(levels)

    def record(module, inputs, output):
        level = int(np.log2(config.output_size // output.shape[-1]))
        params[level] += count_parameters(module)
        flops[level] += 2 * count_parameters(module) * output.shape[-1] * output.shape[-2]

    with torch.device("meta"):
        hourglass = Hourglass(config.hourglass_depth, config.channels, config.increase)
        for module in hourglass.modules():
            if isinstance(module, Residual):
                module.register_forward_hook(record)
        hourglass(torch.zeros(1, config.channels, config.output_size, config.output_size))
    return params, flops

# %%
paper = SPATIAL_PRESETS["paper"]
params, flops = cost_per_level(paper)
fig, ax = plt.subplots(figsize=(7, 3))
levels = np.arange(len(params))
ax.bar(levels - 0.2, 100 * params / params.sum(), 0.4, label=f"parameters ({params.sum() / 1e6:.1f} M)")
ax.bar(levels + 0.2, 100 * flops / flops.sum(), 0.4, label=f"FLOPs ({flops.sum() / 1e9:.1f} G)")
ax.set_xticks(levels, [f"{paper.output_size >> level}x{paper.output_size >> level}\n"
                       f"{paper.channels + level * paper.increase} ch" for level in levels])
ax.set_ylabel("% of one hourglass"), ax.legend(frameon=False)
ax.set_title("paper preset: one hourglass (depth 4, C = 256, Δ = 128) by level")
plt.show()
assert params.argmax() == len(params) - 1 and flops[:2].sum() > flops[2:].sum()
total = estimate_flops(paper)
print(f"paper: {paper.num_stacks} hourglasses {paper.num_stacks * flops.sum() / 1e9:.0f} of {total:.0f} GFLOPs; "
      "the rest is the stem and, per stack, the features, head and merge convs on the full grid")

# %% [markdown]
# ## 6. Overfit one batch and watch heatmaps appear
#
# The first test of any new network: can it memorise **one** batch? If the loss does not fall on a
# handful of frames, something is broken (targets, loss, initialisation, the wiring of the stacks), and
# no amount of data will help. We take a few frames of the `easy` synthetic preset, encode their targets
# with the codec (`SyntheticSpatialDataset` does both, without augmentation here), and train the two-stack
# variant `TWO_STACKS` of section 3 on this batch only with Adam and all SpatialNet losses at the paper's weights
# (`spatial_loss`: $L_\text{det}$ + $10^{-3} L_\text{KE}$ + $10^{-4} L_\text{SIE}$ + $10^{-4} L_\text{aux}$;
# notebook 02 explains the other terms). We watch $L_\text{det}$, Eq. (4).

# %%
from mpat_nb.data.datasets import SyntheticSpatialDataset, collate_samples
from mpat_nb.losses import detection_loss, spatial_loss

BATCH, STEPS, LR = (3, 150, 3e-3) if FAST else (8, 480, 2e-3)      # [I] a high rate: we want to memorise
SNAPSHOT_STEPS = np.linspace(0, STEPS, 7).round().astype(int).tolist()

dataset = SyntheticSpatialDataset(tiny.input_size, tiny.output_size, preset="easy", length=BATCH, augment=None)
images, targets = collate_samples([dataset[i] for i in range(BATCH)])   # (B, 3, 256, 256), SpatialTargets
print(f"images {tuple(images.shape)}, target heatmaps {tuple(targets.heatmaps.shape)}, "
      f"people per frame {targets.person_valid.sum(-1).tolist()}")
assert targets.heatmaps.shape == (BATCH, tiny.num_joints, tiny.output_size, tiny.output_size)
assert 0.8 < targets.heatmaps.amax() <= 1.0                     # unnormalised Gaussians peak near 1

# %% [markdown]
# To look at heatmaps we take the maximum over the joints and paint it over the (dimmed, grey) frame.
# The predicted maps are linear (no sigmoid), so we clip them to $[0, 1]$ for display.

# %%
import cv2

from mpat_nb.viz import frame_grid, frame_strip
from mpat_nb.widgets import show_image


def overlay(image, heatmaps):
    """image (3, S, S) in [0, 1]; heatmaps (K, H, W) -> (S, S, 3) uint8, max over joints in colour."""
    size = image.shape[-1]
    heat = cv2.resize(heatmaps.amax(0).clamp(0, 1).cpu().numpy(), (size, size), interpolation=cv2.INTER_LINEAR)
    grey = 0.45 * image.mean(0).cpu().numpy()[..., None].repeat(3, axis=-1)
    colour, alpha = plt.cm.inferno(heat)[..., :3], np.sqrt(heat)[..., None]
    return (255 * ((1 - alpha) * grey + alpha * colour)).astype(np.uint8)


def to_uint8(image):
    return (255 * image.permute(1, 2, 0).cpu().numpy()).astype(np.uint8)


show_image(frame_grid([frame_strip([to_uint8(image) for image in images], labels=[f"frame {b}" for b in range(BATCH)]),
                       frame_strip([overlay(image, heatmaps) for image, heatmaps in zip(images, targets.heatmaps)],
                                   labels=["target"] * BATCH)]),
           width=min(3 * BATCH, 15), title="the batch and its target heatmaps (max over joints)")
plt.show()

# %% [markdown]
# The training loop. Each step we also record $L_\text{det}$ of every stack separately and, at a few
# steps, the last stack's heatmaps (from the same forward pass, so recording costs nothing).

# %%
torch.manual_seed(0)
model = SpatialNet(TWO_STACKS).to(device).train()
optimizer = torch.optim.Adam(model.parameters(), lr=LR)
images, targets = images.to(device), targets.to(device)
history, snapshots = [], {}
for step in range(STEPS + 1):
    output = model(images)
    losses = spatial_loss(output, targets)
    per_stack = [detection_loss(output.heatmaps[:, s:s + 1], targets.heatmaps, targets.heatmap_mask).item()
                 for s in range(output.num_stacks)]
    history.append({"total": losses["total"].item(), "det": losses["det"].item(), "per_stack": per_stack})
    if step in SNAPSHOT_STEPS:
        snapshots[step] = output.heatmaps_final.detach().cpu()       # (B, K, H, W)
        print(f"step {step:4d}  total {history[-1]['total']:.5f}  det {history[-1]['det']:.5f}")
    if step < STEPS:                                                  # the last pass only records
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()

# %%
det = np.array([h["det"] for h in history])
fig, (ax_all, ax_stacks) = plt.subplots(1, 2, figsize=(11, 3.2))
ax_all.semilogy([h["total"] for h in history], label="total (all SpatialNet losses)")
ax_all.semilogy(det, label="$L_{det}$ (sum over stacks)")
ax_all.set_title("one batch, memorised")
for s, values in enumerate(np.array([h["per_stack"] for h in history]).T):
    ax_stacks.semilogy(values, label=f"stack {s + 1}")
ax_stacks.set_title("$L_{det}$ per stack (intermediate supervision)")
for ax in (ax_all, ax_stacks):
    ax.set_xlabel("step"), ax.legend(frameon=False), ax.grid(alpha=0.3, which="both")
plt.show()
print(f"L_det fell from {det[0]:.5f} to {det[-1]:.5f} ({det[0] / det[-1]:.1f}x)")
assert det[-1] < det[0] / 3, "the detection loss did not fall by 3x on one batch: training is broken"

# %% [markdown]
# Stack 2 ends well below stack 1: it starts from stack 1's features and prediction (Eq. 3) and refines
# them, which is why inference reads the last stack.
#
# Now the point of the exercise: the predicted heatmaps at the recorded steps, next to the target. At
# step 0 the heads output almost nothing (they start near zero by design); blobs then grow at the joints,
# first coarse and shared by neighbouring joints, then sharp.

# %%
SHOWN = range(min(BATCH, 3))                                        # frames shown in the figures
rows = [frame_strip([overlay(images[b], targets.heatmaps[b])] + [overlay(images[b], snapshots[step][b])
                                                                  for step in SNAPSHOT_STEPS],
                    labels=["target"] + [f"step {step}" for step in SNAPSHOT_STEPS]) for b in SHOWN]
show_image(frame_grid(rows), width=15, title="predicted heatmaps (last stack, max over joints) during training")
plt.show()

# %% [markdown]
# ### Explore: scrub through the training
#
# The slider (or the play button) walks through the recorded steps; it calls the same plain drawing
# function as the static picture just below.

# %%
def draw_snapshot(index):
    """Target and prediction at SNAPSHOT_STEPS[index], one row per shown frame: (H, W, 3) uint8."""
    step = SNAPSHOT_STEPS[index]
    return frame_grid([frame_strip([overlay(images[b], targets.heatmaps[b]),
                                    overlay(images[b], snapshots[step][b])],
                                   labels=["target", f"step {step}"]) for b in SHOWN])


show_image(draw_snapshot(len(SNAPSHOT_STEPS) // 2), width=6, title=f"snapshot {len(SNAPSHOT_STEPS) // 2}")
plt.show()

# %% tags=["NBVAL_IGNORE_OUTPUT"]
from mpat_nb.widgets import choice_viewer, frame_scrubber

frame_scrubber(draw_snapshot, len(SNAPSHOT_STEPS), description="snapshot", interval_ms=600, width=6)

# %% [markdown]
# One joint at a time: the target and the final prediction of a single heatmap channel. Each channel
# must fire on its own joint only (a left wrist is not a right wrist), which is harder than "somewhere
# on a person".

# %%
from mpat_nb.skeleton import JOINT_NAMES


def draw_joint(name):
    """Target and final prediction of one joint's heatmap, side by side for the shown frames."""
    k = JOINT_NAMES.index(name)
    final = snapshots[SNAPSHOT_STEPS[-1]]
    return frame_grid([frame_strip([overlay(images[b], targets.heatmaps[b, k:k + 1]),
                                    overlay(images[b], final[b, k:k + 1])],
                                   labels=[f"target: {name}", f"step {STEPS}"]) for b in SHOWN])


show_image(draw_joint("left_wrist"), width=6, title="left_wrist")
plt.show()

# %% tags=["NBVAL_IGNORE_OUTPUT"]
choice_viewer(draw_joint, list(JOINT_NAMES), description="joint", width=6)

# %% [markdown]
# ## Summary
# * The **residual block** (Eq. 1) is a pre-activation bottleneck: cheap (the $3\times3$ conv runs at half
#   width) and close to the identity, so deep stacks of them train.
# * The **hourglass** (Eq. 2) sums a full-resolution branch with a pooled, recursed and upsampled one;
#   its depth sets how coarse the bottom grid is and hence how far each output pixel can see.
# * **Stacking** (Eq. 3) repeats hourglasses; each stack predicts, is supervised (Eq. 4) and hands its
#   prediction and features to the next. Our rebuild matches `mpat_nb.models.hourglass` exactly.
# * The **theoretical** receptive field of `tiny` exceeds the whole image, but the **effective** one at
#   initialisation is a small Gaussian-like blob.
# * In the paper preset the parameters sit at the bottom of the hourglass, the FLOPs near the top.
# * One batch is memorised in a few hundred steps: $L_\text{det}$ falls several times and the heatmaps
#   appear, first as blurry blobs on the people, then as peaks at the right joints.
#
# ## Exercises
# 1. The Associative Embedding code builds its hourglass from plain $3\times3$ conv-BN-ReLU layers instead
#    of bottleneck residuals. Write such a block, rebuild the paper's hourglass with it and count the
#    parameters. Compare with `preset_table` and with the 138.9 M that `docs/method.md` (2.1) quotes for
#    AE's network. Where does the difference come from?
# 2. Measure the effective receptive field of the **trained** `model` with `gradient_map(model.eval())`
#    and `support_and_radius`. Did training on one batch widen it?
# 3. Switch off intermediate supervision: train on
#    `detection_loss(output.heatmaps[:, -1:], targets.heatmaps, targets.heatmap_mask)` only and compare the
#    per-stack curves. What does stack 1 output now, and why?
# 4. Keep the width constant inside the hourglass, as pytorch_stacked_hourglass does:
#    `dataclasses.replace(tiny, increase=0)`. How do the parameters, FLOPs and the overfitting curve change?
# 5. Overfit with the paper's learning rate, 2e-4. How many steps does $L_\text{det}$ need to fall 3x? Why is
#    a high rate fine for memorising one batch but not for training on the whole data stream?
#
# **Next:** [02 · Embedding losses](02_embedding_losses.ipynb): what the other $K + 8$ channels of the
# head learn (Keypoint Embedding, Spatial Vector Field, ordinal maps) and their losses.
