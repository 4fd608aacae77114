"""Decoding: perfect maps encoded from the ground truth decode back to the ground truth."""

import numpy as np
import pytest
import torch

from mpat_nb.codec import encode_targets, joints_to_output_coords
from mpat_nb.config import SVF_NORMALISER
from mpat_nb.data.annotations import Frame, Video
from mpat_nb.data.augment import NO_AUGMENTATION, augment_joints, augment_points
from mpat_nb.data.datasets import people_to_arrays
from mpat_nb.decode import DecodeConfig, decode_batch, extract_candidates, poses_to_people
from mpat_nb.evaluate import evaluate

INPUT, OUTPUT = 256, 64


def _perfect_maps(frame, image_size):
    """Maps a perfect SpatialNet would output: GT heatmaps, KE = person index on its pixels, GT SVF."""
    joints, centres, scales = people_to_arrays(frame.people)
    joints_in = augment_joints(joints, NO_AUGMENTATION, image_size, (INPUT, INPUT))
    centres_in = augment_points(centres, NO_AUGMENTATION, image_size, (INPUT, INPUT))
    targets = encode_targets(joints_to_output_coords(joints_in, INPUT, OUTPUT),
                             joints_to_output_coords(centres_in, INPUT, OUTPUT), scales, OUTPUT)
    ke = targets.instance_map.float()[None].expand(joints.shape[1], -1, -1) * 3.0  # person n -> tag 3n
    return {"heatmaps": targets.heatmaps[None], "ke": ke[None].unsqueeze(-1),
            "svf": targets.svf[None] * SVF_NORMALISER}


@pytest.fixture(scope="module")
def clip():
    from mpat_nb.data.synth import generate_clip

    return generate_clip(preset="easy", seed=5, num_frames=3, size=(256, 192))


@pytest.mark.parametrize("embedding", ["ke", "sie", "ke+sie"])
def test_perfect_maps_decode_to_ground_truth(clip, embedding):
    size = (clip.frames.shape[2], clip.frames.shape[1])
    predicted = []
    for frame in clip.video.frames:
        poses = decode_batch(_perfect_maps(frame, size), DecodeConfig(embedding=embedding))[0]
        predicted.append(Frame(file_name=frame.file_name, people=poses_to_people(poses, size, INPUT, OUTPUT)))
    result = evaluate(clip.video, Video(clip.video.name, predicted))
    assert result.total_map > 90.0


def test_candidates_read_embeddings_at_their_pixels():
    heatmaps = torch.zeros(1, 15, 16, 16)
    heatmaps[0, 3, 5, 7] = 1.0
    ke = torch.zeros(1, 15, 16, 16)
    ke[0, 3, 5, 7] = 2.5
    svf = torch.zeros(1, 2, 16, 16)
    svf[0, :, 5, 7] = torch.tensor([1.0, -2.0])
    cands = extract_candidates(heatmaps, ke, svf, DecodeConfig(top_k=4))[0]
    assert cands.xy.shape == (15, 4, 2)
    np.testing.assert_allclose(cands.xy[3, 0], [7, 5])
    assert cands.ke[3, 0, 0] == 2.5
    np.testing.assert_allclose(cands.sie[3, 0], [8.0, 3.0])


def test_poses_map_back_through_the_letterbox():
    pose = np.zeros((1, 15, 3))
    pose[0, :, :2] = [31.5, 31.5]           # output centre
    pose[0, :, 2] = 0.9
    person = poses_to_people(pose, (400, 200), INPUT, OUTPUT)[0]
    np.testing.assert_allclose(person.joints[:, :2], np.tile([199.5, 99.5], (15, 1)), atol=1e-9)
    assert person.scores.max() == pytest.approx(0.9)


def test_tuned_bandwidths_travel_with_the_checkpoint(tmp_path):
    """store_decode_tuning writes the checkpoint's "decode" entry; the loaders read it and tuned_decode_config
    uses it unless the caller sets the field; a bad entry is refused with the file named."""
    import dataclasses as _dataclasses

    from mpat_nb.checkpoints import load_spatialnet, save_checkpoint, store_decode_tuning
    from mpat_nb.config import get_spatial_config
    from mpat_nb.decode import DecodeConfig, tuned_decode_config
    from mpat_nb.models.spatialnet import SpatialNet
    from mpat_nb.utils import InputError

    config = get_spatial_config("tiny")
    path = save_checkpoint(tmp_path / "s.pt", kind="spatialnet", model=SpatialNet(config), model_config=config)
    assert load_spatialnet(path).decode_tuning == {}
    assert tuned_decode_config(load_spatialnet(path)) == DecodeConfig()
    store_decode_tuning(path, {"sie_bandwidth": 0.25})
    model = load_spatialnet(path)
    assert tuned_decode_config(model, embedding="ke+sie") == DecodeConfig(embedding="ke+sie", sie_bandwidth=0.25)
    assert tuned_decode_config(model, sie_bandwidth=0.1).sie_bandwidth == 0.1          # the caller wins
    with pytest.raises(InputError, match="s.pt: unknown decoding settings"):
        store_decode_tuning(path, {"top_k": 3})
    with pytest.raises(InputError, match="must be a positive number"):
        store_decode_tuning(path, {"sie_bandwidth": -1.0})
    assert _dataclasses.asdict(tuned_decode_config(load_spatialnet(path)))["sie_bandwidth"] == 0.25
