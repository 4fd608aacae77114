"""An articulated body in 3-D camera space and the motion programs that move it.

This is the "actor" half of the synthetic generator (:mod:`mpat_nb.data.synth` builds scenes from it
and :mod:`mpat_nb.data.render` draws it). A person is a kinematic tree rooted at the pelvis:

    pelvis -> spine -> neck base -> neck -> head          (torso lean, side bend)
    neck base -> shoulder -> elbow -> wrist -> hand tip    (per side: swing, abduction, elbow flex)
    pelvis -> hip -> knee -> ankle -> toe                  (per side: swing, abduction, knee flex)

Every segment direction is two angles measured from "hanging straight down": ``swing`` rotates it
forwards in the body's sagittal plane and ``abduct`` lifts it sideways away from the body (pi/2 =
horizontal, pi = straight up). Elbows and knees add a flexion to the swing of the lower segment.
The body lives in 3-D so that turning (yaw) foreshortens shoulders and hips, a profile view shows the
leg swing, and the renderer knows which arm is in front of the torso.

Coordinates are camera coordinates in metres: x to the image right, y **down**, z away from the
camera (depth). A person with heading ``theta`` faces ``forward = (sin theta, 0, -cos theta)``, so
``theta = 0`` faces the camera and ``theta = pi/2`` walks to the image right. The person's own left
is ``left = (cos theta, 0, sin theta)``: facing the camera, their left hand is on the image right.

Glossary: T frames, P body points (:data:`BODY_POINT_NAMES`: the 17 PoseTrack18 slots first, then
helper points for drawing), all angles in radians, times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from mpat_nb.skeleton import KEYPOINT_NAMES_17

# ----------------------------------------------------------------------------------------------
# Body points: the 17 keypoint slots, then helpers the renderer needs (hands, toes, torso corners)
# ----------------------------------------------------------------------------------------------
_TORSO_CORNERS = tuple(
    f"{level}_{side}_{face}"
    for level in ("shoulder_level", "waist_level", "crotch_level")
    for side in ("left", "right")
    for face in ("front", "back")
)
BODY_POINT_NAMES: tuple[str, ...] = KEYPOINT_NAMES_17 + (
    "neck_base", "head_centre", "pelvis",
    "left_hand_tip", "right_hand_tip", "left_toe", "right_toe", "left_eye_point", "right_eye_point",
) + _TORSO_CORNERS
NUM_BODY_POINTS = len(BODY_POINT_NAMES)
POINT = {name: index for index, name in enumerate(BODY_POINT_NAMES)}  # name -> row of a (..., P, 3) array

#: Rows of the 12 torso corners: shoulder level (4), waist level (4), crotch level (4).
SHOULDER_CORNERS = np.arange(POINT["shoulder_level_left_front"], POINT["shoulder_level_left_front"] + 4)
WAIST_CORNERS = SHOULDER_CORNERS + 4
CROTCH_CORNERS = SHOULDER_CORNERS + 8

MOTION_KINDS: tuple[str, ...] = ("walk", "run", "wave", "jump", "turn", "random")
#: Programs that move the person over the ground (the others stay on the spot).
LOCOMOTION_KINDS: tuple[str, ...] = ("walk", "run")

REFERENCE_HEIGHT = 1.70  # m; BodyShape's default lengths add up to this standing height


# ----------------------------------------------------------------------------------------------
# Body shape
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BodyShape:
    """One person's proportions in metres. The defaults are a 1.70 m adult.

    Standing height = ankle_height + shin + thigh + torso + neck + 2 * head_half_height.
    Widths are full widths of the drawn capsules (limb thickness).
    """

    ankle_height: float = 0.08
    shin: float = 0.42
    thigh: float = 0.43
    torso: float = 0.47            # pelvis centre (between the hip joints) to the neck base
    neck: float = 0.08             # neck base to head_bottom (the upper neck / chin)
    head_half_height: float = 0.11
    head_half_width: float = 0.075
    shoulder_half_width: float = 0.18   # shoulder joint centres
    waist_half_width: float = 0.14
    hip_half_width: float = 0.09        # hip joint centres
    pelvis_half_width: float = 0.17     # outer width at the crotch level
    chest_half_depth: float = 0.11
    upper_arm: float = 0.29
    forearm: float = 0.25
    hand: float = 0.09
    foot: float = 0.16
    neck_width: float = 0.11
    upper_arm_width: float = 0.10
    forearm_width: float = 0.08
    hand_width: float = 0.075
    thigh_width: float = 0.15
    shin_width: float = 0.11
    foot_width: float = 0.08

    @property
    def height(self) -> float:
        """Standing height in metres."""
        return self.ankle_height + self.shin + self.thigh + self.torso + self.neck + 2 * self.head_half_height


_FIELDS = tuple(f.name for f in fields(BodyShape))
_WIDTH_FIELDS = tuple(f.name for f in fields(BodyShape) if f.name.endswith(("width", "depth")))
_HEAD_FIELDS = ("head_half_height", "head_half_width")


def sample_body_shape(rng: np.random.Generator, height: float, proportion_jitter: float,
                      build: float = 1.0) -> BodyShape:
    """A person of the given standing height (m) with randomly varied proportions.

    Lengths scale with ``height``; each length and width is then multiplied by its own factor
    ``1 + N(0, proportion_jitter)`` (clipped to +-2.5 sigma); ``build`` scales all widths (thin < 1 <
    broad). Heads scale with the square root of the height, so children get relatively larger heads.
    """
    base = BodyShape()
    scale = height / REFERENCE_HEIGHT
    limit = 2.5 * proportion_jitter
    jitter = 1.0 + np.clip(rng.normal(0.0, proportion_jitter, len(_FIELDS)), -limit, limit)
    values = {}
    for name, factor in zip(_FIELDS, jitter.tolist()):
        value = getattr(base, name) * factor * (np.sqrt(scale) if name in _HEAD_FIELDS else scale)
        values[name] = value * build if name in _WIDTH_FIELDS else value
    shape = BodyShape(**values)
    # Give the rounding of the head back to the legs so the standing height is exactly ``height``.
    missing = (height - shape.height) / 2
    return replace(shape, shin=shape.shin + missing, thigh=shape.thigh + missing)


# ----------------------------------------------------------------------------------------------
# Motion programs
# ----------------------------------------------------------------------------------------------
@dataclass
class MotionProgram:
    """A periodic or smooth-random movement, evaluated at any time by :func:`pose_angles`.

    kind: one of :data:`MOTION_KINDS`.
    phase: rad, where in its cycle the program starts (different people are out of step).
    cadence: cycles per second (a gait cycle = two steps; a wave; a jump; a turn = one revolution).
    amplitude: scales the joint excursions (1 = a typical adult).
    side: +1 / -1, which arm waves or which way the person spins.
    variant: program-specific choice (wave: 1 = both arms; jump: 0 = jumping jack, 1 = tuck jump).
    random_terms: for ``kind == "random"``: angle name -> (base, (3, 3) rows of amplitude, frequency,
        phase) of a sum of sinusoids.
    """

    kind: str
    phase: float = 0.0
    cadence: float = 1.0
    amplitude: float = 1.0
    side: int = 1
    variant: int = 0
    random_terms: dict = field(default_factory=dict)


#: Cadence (cycles / s) of each program at speed factor 1.
BASE_CADENCE = {"walk": 0.9, "run": 1.4, "wave": 1.8, "jump": 1.0, "turn": 0.35, "random": 1.0}
#: Stride (m per gait cycle) per metre of body height at amplitude 1.
STRIDE_PER_HEIGHT = {"walk": 0.85, "run": 1.45}

# Joint limits (rad) for the smooth random program: (low, high).
_RANDOM_LIMITS = {
    "lean": (-0.1, 0.5), "side_bend": (-0.2, 0.2),
    "arm_swing": (-0.8, 2.6), "arm_abduct": (0.0, 2.9), "elbow_flex": (0.0, 2.3), "forearm_abduct": (-0.3, 1.4),
    "leg_swing": (-0.5, 1.3), "leg_abduct": (0.0, 0.6), "knee_flex": (0.0, 2.0),
}


def sample_motion_program(rng: np.random.Generator, kind: str, speed: float = 1.0) -> MotionProgram:
    """A program of the given kind with a random phase, a cadence ``speed`` x the base cadence
    (+-15 %), and random amplitude and variant."""
    if kind not in MOTION_KINDS:
        raise ValueError(f"unknown motion kind {kind!r}; use one of {MOTION_KINDS}")
    program = MotionProgram(
        kind=kind,
        phase=float(rng.uniform(0, 2 * np.pi)),
        cadence=BASE_CADENCE[kind] * speed * float(rng.uniform(0.85, 1.15)),
        amplitude=float(rng.uniform(0.8, 1.15)),
        side=int(rng.choice([-1, 1])),
        variant=int(rng.random() < 0.35),
    )
    if kind == "random":
        for name, (low, high) in _RANDOM_LIMITS.items():
            for sided in (("left_", "right_") if name not in ("lean", "side_bend") else ("",)):
                span = high - low
                base = rng.uniform(low + 0.15 * span, low + 0.55 * span) if name != "side_bend" else 0.0
                terms = np.stack([
                    rng.uniform(0.05, 0.22, 3) * span,           # amplitude
                    rng.uniform(0.15, 0.9, 3) * speed,          # frequency (Hz)
                    rng.uniform(0, 2 * np.pi, 3),                # phase
                ], axis=1)
                program.random_terms[sided + name] = (float(base), terms)
    return program


def ground_speed(program: MotionProgram, shape: BodyShape) -> float:
    """Walking / running speed in m/s that matches the gait (stride x cadence); 0 for the others."""
    if program.kind not in LOCOMOTION_KINDS:
        return 0.0
    return STRIDE_PER_HEIGHT[program.kind] * shape.height * program.amplitude * program.cadence


@dataclass
class PoseAngles:
    """Joint angles over time. Sided arrays are (T, 2) with column 0 = left, 1 = right; others (T,).

    lean / side_bend: torso tilt forwards / towards the person's left.
    arm_swing, arm_abduct: upper-arm direction; elbow_flex adds to the forearm's swing and
    forearm_abduct to its abduction. leg_swing, leg_abduct: thigh direction; knee_flex bends the shin
    backwards. airborne: m the feet are above the ground. yaw_offset: rad added to the heading.
    """

    lean: np.ndarray
    side_bend: np.ndarray
    arm_swing: np.ndarray
    arm_abduct: np.ndarray
    elbow_flex: np.ndarray
    forearm_abduct: np.ndarray
    leg_swing: np.ndarray
    leg_abduct: np.ndarray
    knee_flex: np.ndarray
    airborne: np.ndarray
    yaw_offset: np.ndarray


def pose_angles(program: MotionProgram, times: np.ndarray) -> PoseAngles:
    """Evaluate a motion program at ``times``: (T,) seconds -> :class:`PoseAngles` over T frames."""
    t = np.asarray(times, dtype=np.float64)
    zeros, ones = np.zeros_like(t), np.ones_like(t)
    cycle = 2 * np.pi * program.cadence * t + program.phase   # gait / wave / jump angle
    a = program.amplitude

    def sided(left, right):
        return np.stack([np.broadcast_to(left, t.shape), np.broadcast_to(right, t.shape)], axis=1).astype(np.float64)

    if program.kind in ("walk", "run"):
        running = program.kind == "run"
        # The left leg swings with sin(cycle), the right one half a cycle later; arms swing opposite.
        left_cycle, right_cycle = cycle, cycle + np.pi
        thigh = (0.75 if running else 0.42) * a
        thigh_offset = 0.2 if running else 0.05
        leg_swing = sided(thigh_offset + thigh * np.sin(left_cycle), thigh_offset + thigh * np.sin(right_cycle))
        # The knee bends most while the leg swings forwards (cos > 0), and stays nearly straight in stance.
        knee_peak = 1.5 if running else 0.95
        knee_base = 0.35 if running else 0.12
        knee_flex = sided(knee_base + knee_peak * a * np.clip(np.cos(left_cycle), 0, None) ** 2,
                          knee_base + knee_peak * a * np.clip(np.cos(right_cycle), 0, None) ** 2)
        arm = (0.6 if running else 0.32) * a
        arm_swing = sided(-arm * np.sin(left_cycle), -arm * np.sin(right_cycle))
        elbow_base = 1.4 if running else 0.2
        elbow_flex = sided(elbow_base + 0.25 * np.clip(-np.sin(left_cycle), 0, None),
                           elbow_base + 0.25 * np.clip(-np.sin(right_cycle), 0, None))
        return PoseAngles(
            lean=(0.2 if running else 0.05) * ones,
            side_bend=0.03 * np.sin(cycle),
            arm_swing=arm_swing, arm_abduct=sided(0.1, 0.1), elbow_flex=elbow_flex,
            forearm_abduct=sided(0.0, 0.0),
            leg_swing=leg_swing, leg_abduct=sided(0.03, 0.03), knee_flex=knee_flex,
            airborne=(0.06 * a * np.clip(np.sin(2 * cycle), 0, None) if running else zeros),
            yaw_offset=zeros,
        )

    if program.kind == "wave":
        # Upper arm out sideways above the horizontal; the forearm points up and sways.
        sway = 0.45 * a * np.sin(cycle)
        waving_abduct, waving_forearm = 1.75 + 0.1 * np.sin(0.5 * cycle), 1.0 + sway
        hanging_abduct, hanging_forearm = 0.12 * ones, 0.0 * ones
        waving_left = program.side > 0
        both = program.variant == 1
        left = (waving_abduct, waving_forearm) if (waving_left or both) else (hanging_abduct, hanging_forearm)
        right = (waving_abduct, waving_forearm) if (not waving_left or both) else (hanging_abduct, hanging_forearm)
        shift = 0.05 * np.sin(0.3 * cycle)   # slow weight shift
        return PoseAngles(
            lean=0.02 * ones, side_bend=0.04 * np.sin(0.3 * cycle),
            arm_swing=sided(0.15, 0.15), arm_abduct=sided(left[0], right[0]), elbow_flex=sided(0.2, 0.2),
            forearm_abduct=sided(left[1], right[1]),
            leg_swing=sided(shift, -shift), leg_abduct=sided(0.06, 0.06), knee_flex=sided(0.08, 0.08),
            airborne=zeros, yaw_offset=zeros,
        )

    if program.kind == "jump":
        if program.variant == 0:
            # Jumping jack: arms and legs open together (h = 1) and close (h = 0), a hop in between.
            h = 0.5 - 0.5 * np.cos(cycle)
            return PoseAngles(
                lean=0.02 * ones, side_bend=zeros,
                arm_swing=sided(0.05, 0.05), arm_abduct=sided(0.15 + 2.5 * a * h, 0.15 + 2.5 * a * h),
                elbow_flex=sided(0.15, 0.15), forearm_abduct=sided(0.25 * h, 0.25 * h),
                leg_swing=sided(0.0, 0.0), leg_abduct=sided(0.04 + 0.22 * h, 0.04 + 0.22 * h),
                knee_flex=sided(0.1 + 0.15 * (1 - h), 0.1 + 0.15 * (1 - h)),
                airborne=0.1 * a * np.abs(np.sin(cycle)), yaw_offset=zeros,
            )
        # Tuck jump: crouch (sin < 0), then fly with the arms thrown forwards and up.
        crouch = np.clip(-np.sin(cycle), 0, None)
        flight = np.clip(np.sin(cycle), 0, None)
        return PoseAngles(
            lean=0.1 + 0.35 * crouch, side_bend=zeros,
            arm_swing=sided(-0.5 * crouch + 2.4 * flight, -0.5 * crouch + 2.4 * flight),
            arm_abduct=sided(0.15, 0.15), elbow_flex=sided(0.2 + 0.3 * crouch, 0.2 + 0.3 * crouch),
            forearm_abduct=sided(0.0, 0.0),
            leg_swing=sided(0.9 * crouch + 0.5 * flight ** 2, 0.9 * crouch + 0.5 * flight ** 2),
            leg_abduct=sided(0.06, 0.06),
            knee_flex=sided(1.5 * crouch + 0.9 * flight ** 2, 1.5 * crouch + 0.9 * flight ** 2),
            airborne=0.3 * a * flight ** 2, yaw_offset=zeros,
        )

    if program.kind == "turn":
        # Spin on the spot, arms a little out, stepping in place about twice per revolution so that
        # the feet move while the body turns. The yaw grows linearly: one revolution per cycle.
        step = 2 * np.pi * 2.2 * program.cadence * t + program.phase
        return PoseAngles(
            lean=0.03 * ones, side_bend=zeros,
            arm_swing=sided(0.1, 0.1), arm_abduct=sided(0.55 + 0.25 * np.sin(step), 0.55 - 0.25 * np.sin(step)),
            elbow_flex=sided(0.35, 0.35), forearm_abduct=sided(0.1, 0.1),
            leg_swing=sided(0.12 * np.sin(step), -0.12 * np.sin(step)), leg_abduct=sided(0.06, 0.06),
            knee_flex=sided(0.1 + 0.3 * np.clip(np.cos(step), 0, None), 0.1 + 0.3 * np.clip(-np.cos(step), 0, None)),
            airborne=zeros, yaw_offset=program.side * (cycle - program.phase),
        )

    if program.kind == "random":
        def smooth(name: str) -> np.ndarray:
            base, terms = program.random_terms[name]
            value = base + (terms[:, 0, None] * np.sin(2 * np.pi * terms[:, 1, None] * t + terms[:, 2, None])).sum(0)
            low, high = _RANDOM_LIMITS[name.removeprefix("left_").removeprefix("right_")]
            return np.clip(value, low, high)

        def both_sides(name: str) -> np.ndarray:
            return sided(smooth("left_" + name), smooth("right_" + name))

        yaw = 0.6 * np.sin(2 * np.pi * 0.2 * program.cadence * t + program.phase)
        return PoseAngles(
            lean=smooth("lean"), side_bend=smooth("side_bend"),
            arm_swing=both_sides("arm_swing"), arm_abduct=both_sides("arm_abduct"),
            elbow_flex=both_sides("elbow_flex"), forearm_abduct=both_sides("forearm_abduct"),
            leg_swing=both_sides("leg_swing"), leg_abduct=both_sides("leg_abduct"),
            knee_flex=both_sides("knee_flex"), airborne=zeros, yaw_offset=yaw,
        )

    raise ValueError(f"unknown motion kind {program.kind!r}; use one of {MOTION_KINDS}")


# ----------------------------------------------------------------------------------------------
# Forward kinematics
# ----------------------------------------------------------------------------------------------
def body_points(shape: BodyShape, angles: PoseAngles, ground_xz: np.ndarray, heading: np.ndarray,
                camera_height: float) -> np.ndarray:
    """Place the body in camera space: -> (T, P, 3) points x, y (down), z (depth) in metres.

    ground_xz: (T, 2) where the pelvis is above the ground (x lateral, z depth).
    heading: (T,) rad, the facing direction (0 = towards the camera); angles.yaw_offset is added.
    camera_height: m of the camera above the ground; the ground is the plane y = camera_height.
    The body is lowered until its lower ankle is ``ankle_height`` above the ground, then lifted by
    ``angles.airborne``, so bent knees crouch and jumps leave the ground.
    """
    yaw = np.asarray(heading, dtype=np.float64) + angles.yaw_offset
    count = yaw.shape[0]
    up = np.broadcast_to(np.array([0.0, -1.0, 0.0]), (count, 3))
    forward = np.stack([np.sin(yaw), np.zeros(count), -np.cos(yaw)], axis=1)
    left = np.stack([np.cos(yaw), np.zeros(count), np.sin(yaw)], axis=1)
    points = np.zeros((count, NUM_BODY_POINTS, 3))

    def put(name: str, value: np.ndarray) -> np.ndarray:
        points[:, POINT[name]] = value
        return value

    def scaled(vectors: np.ndarray, length) -> np.ndarray:
        return vectors * np.asarray(length, dtype=np.float64).reshape(-1, 1)

    # Torso: the spine leans forwards and bends sideways.
    spine = (scaled(up, np.cos(angles.lean)) + scaled(forward, np.sin(angles.lean))
             + scaled(left, np.sin(angles.side_bend)))
    spine /= np.linalg.norm(spine, axis=1, keepdims=True)
    pelvis = put("pelvis", np.zeros((count, 3)))
    neck_base = put("neck_base", pelvis + shape.torso * spine)
    head_bottom = put("head_bottom", neck_base + shape.neck * spine)
    head_centre = put("head_centre", head_bottom + shape.head_half_height * spine + 0.02 * forward)
    put("head_top", head_centre + 0.85 * shape.head_half_height * spine)   # inside the drawn head
    put("nose", head_centre + 0.9 * shape.head_half_width * forward - 0.15 * shape.head_half_height * spine)
    put("left_ear", head_centre + 0.9 * shape.head_half_width * left)
    put("right_ear", head_centre - 0.9 * shape.head_half_width * left)
    for side_name, side in (("left", 1.0), ("right", -1.0)):
        put(f"{side_name}_eye_point", head_centre + 0.8 * shape.head_half_width * forward
            + 0.38 * side * shape.head_half_width * left + 0.12 * shape.head_half_height * spine)

    # Torso corners (for drawing): three levels x (left, right) x (front, back).
    levels = (
        (neck_base - 0.03 * spine, shape.shoulder_half_width, shape.chest_half_depth),
        (pelvis + 0.06 * spine, shape.waist_half_width, 0.9 * shape.chest_half_depth),
        (pelvis - 0.07 * spine, shape.pelvis_half_width, 0.9 * shape.chest_half_depth),
    )
    row = POINT["shoulder_level_left_front"]
    for centre, half_width, half_depth in levels:
        for side in (1.0, -1.0):
            for face in (1.0, -1.0):
                points[:, row] = centre + side * half_width * left + face * half_depth * forward
                row += 1

    for column, (side_name, side) in enumerate((("left", 1.0), ("right", -1.0))):
        # Arm: shoulder -> elbow -> wrist -> hand tip.
        shoulder = put(f"{side_name}_shoulder", neck_base - 0.03 * spine + side * shape.shoulder_half_width * left)
        swing, abduct = angles.arm_swing[:, column], angles.arm_abduct[:, column]
        elbow = put(f"{side_name}_elbow", shoulder + shape.upper_arm * _segment(swing, abduct, side, up, forward, left))
        forearm_direction = _segment(swing + angles.elbow_flex[:, column], abduct + angles.forearm_abduct[:, column],
                                     side, up, forward, left)
        wrist = put(f"{side_name}_wrist", elbow + shape.forearm * forearm_direction)
        put(f"{side_name}_hand_tip", wrist + shape.hand * forearm_direction)
        # Leg: hip -> knee -> ankle -> toe.
        hip = put(f"{side_name}_hip", pelvis + side * shape.hip_half_width * left)
        swing, abduct = angles.leg_swing[:, column], angles.leg_abduct[:, column]
        knee = put(f"{side_name}_knee", hip + shape.thigh * _segment(swing, abduct, side, up, forward, left))
        shin_direction = _segment(swing - angles.knee_flex[:, column], abduct, side, up, forward, left)
        ankle = put(f"{side_name}_ankle", knee + shape.shin * shin_direction)
        # The foot stays roughly level, pointing forwards.
        put(f"{side_name}_toe", ankle + 0.85 * shape.foot * forward - 0.04 * up)

    # Stand on the ground: the lower ankle (largest y) sits ankle_height above y = camera_height.
    lowest_ankle = np.maximum(points[:, POINT["left_ankle"], 1], points[:, POINT["right_ankle"], 1])
    lift = camera_height - shape.ankle_height - lowest_ankle - angles.airborne
    points[..., 1] += lift[:, None]
    points[..., 0] += np.asarray(ground_xz)[:, None, 0]
    points[..., 2] += np.asarray(ground_xz)[:, None, 1]
    return points


def _segment(swing: np.ndarray, abduct: np.ndarray, side: float, up: np.ndarray, forward: np.ndarray,
             left: np.ndarray) -> np.ndarray:
    """(T, 3) unit direction of a limb segment: from hanging down, swing forwards, then lift sideways.

    d = cos(abduct) (-cos(swing) up + sin(swing) forward) + sin(abduct) side left
    """
    cos_a, sin_a = np.cos(abduct)[:, None], np.sin(abduct)[:, None]
    sagittal = -np.cos(swing)[:, None] * up + np.sin(swing)[:, None] * forward
    return cos_a * sagittal + side * sin_a * left
