"""The training queue's label sampler: TorchIO's LabelSampler, the same distribution of
patch centres to the bit and the same patches under one seed (shift=False); by default
drawn over the whole volume, each patch moved inside it (shift=True)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio
from conftest import phantom, write_pair
from torchio.constants import MIN_FLOAT_32

from liverseg import augment
from liverseg.errors import InputError
from liverseg.sampling import CENTRES, LabelSampler, PatchSubjectsDataset
from liverseg.train import TrainingConfig, patch_batches, training_patches


def subject(shape, seed: int = 0, tumor: bool = True) -> tio.Subject:
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    h, w, d = shape
    label[h // 5 : 4 * h // 5, w // 4 : 3 * w // 4, 1 : d - 1] = 1
    if tumor:
        label[h // 2 : h // 2 + 3, w // 2 : w // 2 + 2, d // 2 : d // 2 + 2] = 2
    label[rng.random(shape) < 0.02] = 2 if tumor else 1  # scattered voxels: ragged class masks
    image = rng.normal(size=shape).astype(np.float32)
    return tio.Subject(
        image=tio.ScalarImage(tensor=torch.from_numpy(image)[None]),
        label=tio.LabelMap(tensor=torch.from_numpy(label)[None]),
    )


def torchio_cdf(sampler: tio.LabelSampler, subj: tio.Subject) -> np.ndarray:
    probability_map = sampler.process_probability_map(sampler.get_probability_map(subj), subj)
    return sampler.get_cumulative_distribution_function(probability_map)


@pytest.mark.parametrize(
    "shape, patch, weights",
    [
        ((64, 48, 20), (32, 32, 16), {0: 1, 1: 2, 2: 4}),  # the config's class weights
        ((65, 47, 21), (33, 31, 15), {0: 1, 1: 2, 2: 4}),  # odd sides and patch sides
        ((40, 40, 12), (40, 40, 12), {0: 1, 1: 2, 2: 4}),  # a patch as large as the volume
        ((64, 48, 20), (32, 32, 16), {0: 0.0, 1: 1.0, 2: 0.5}),  # a class left out, float weights
        ((64, 48, 20), (16, 16, 8), {0: 1, 1: 4}),  # a binary task
    ],
)
@pytest.mark.parametrize("block", [1, 7, 4096])
@pytest.mark.parametrize("shift", [False, True])
def test_distribution_equals_torchio_bit_for_bit(shape, patch, weights, block, shift):
    """The kept values are TorchIO's cumulative distribution's, and every draw picks the
    voxel TorchIO's search of its whole distribution picks: random numbers, and numbers
    aimed at block boundaries and at the ends of classes' runs (where a sum's last bit
    decides). With shift, TorchIO's distribution for a one-voxel patch (no border left
    out), the drawn voxel then moved the least into the box of centres whose patch fits."""
    subj = subject(shape)
    centres = LabelSampler(patch, "label", weights, shift=shift).distribution(subj, block=block)
    torchio_patch = (1, 1, 1) if shift else patch
    theirs = torchio_cdf(tio.LabelSampler(torchio_patch, label_name="label", label_probabilities=weights), subj)
    kept = theirs[block - 1 :: block]
    kept = np.append(kept, theirs[-1]) if theirs.size % block else kept
    assert centres.shape == shape and centres.block_ends.dtype == np.float64
    assert np.array_equal(centres.block_ends, kept)
    rng = np.random.default_rng(block)
    steps = np.flatnonzero(np.diff(theirs) > 0)
    aimed = theirs[np.concatenate([steps[:: max(len(steps) // 50, 1)], np.arange(block - 1, theirs.size, block)[:50]])]
    uniforms = np.concatenate([rng.random(300), aimed / theirs[-1], np.nextafter(aimed, 0) / theirs[-1], [0.0]])
    label = subj["label"].data[0].numpy()
    low, high = np.array(patch) // 2, np.array(shape) - (np.array(patch) - 1) // 2
    for u in uniforms:
        expected = np.unravel_index(np.searchsorted(theirs, max(MIN_FLOAT_32, float(u)) * theirs[-1]), shape)
        expected = np.clip(expected, low, high - 1) if shift else expected
        assert centres.centre(label, float(u)) == tuple(int(i) for i in expected)


def test_absent_class_is_skipped_as_torchio_does():
    """A weighted class with no voxel (no tumour in this subject) takes no share."""
    subj = subject((64, 48, 20), tumor=False)
    weights = {0: 1, 1: 2, 2: 4}
    centres = LabelSampler((32, 32, 16), "label", weights, shift=False).distribution(subj, block=1)
    theirs = torchio_cdf(tio.LabelSampler((32, 32, 16), label_name="label", label_probabilities=weights), subj)
    assert np.array_equal(centres.block_ends, theirs)


def test_same_patches_as_torchio_under_one_seed():
    """Locations and voxels of every patch, twenty draws: what the queue trains on."""
    subj = subject((70, 60, 24), seed=1)
    weights = {0: 1, 1: 2, 2: 4}
    draws = []
    for sampler in (
        LabelSampler((32, 32, 16), "label", weights, shift=False),
        tio.LabelSampler((32, 32, 16), label_name="label", label_probabilities=weights),
    ):
        torch.manual_seed(11)
        draws.append(list(sampler(subj, 20)))
    ours, theirs = draws
    assert len(ours) == len(theirs) == 20
    for a, b in zip(ours, theirs):
        assert torch.equal(a[tio.LOCATION], b[tio.LOCATION])
        assert torch.equal(a["image"].data, b["image"].data) and torch.equal(a["label"].data, b["label"].data)
    assert len({tuple(p[tio.LOCATION].tolist()) for p in ours}) > 10  # really random draws


def test_sampled_centres_follow_the_class_weights():
    """Share of patch centres on tumour voxels: its weight's share (4 of 7)."""
    subj = subject((64, 48, 20), seed=2)
    sampler = LabelSampler((16, 16, 8), "label", {0: 1, 1: 2, 2: 4}, shift=False)
    torch.manual_seed(0)
    label = subj["label"].data[0]
    centres = [p[tio.LOCATION][:3] + torch.tensor([8, 8, 4]) for p in sampler(subj, 2000)]
    tumor = np.mean([int(label[tuple(c.tolist())]) == 2 for c in centres])
    assert abs(tumor - 4 / 7) < 0.04


def test_no_sampleable_voxel_names_the_label_file(tmp_path):
    """Only the tumour class weighted, and no tumour where a patch can be centred (TorchIO's
    rule) or none at all (shift); a tumour in the corner is drawn into the corner patch."""
    path = tmp_path / "lb0.nii.gz"
    label = np.zeros((40, 40, 12), np.uint8)
    label[0:2, 0:2, 0:2] = 2  # in the corner: no patch centre can lie there
    nib.save(nib.Nifti1Image(label, np.eye(4)), path)
    subj = tio.Subject(label=tio.LabelMap(path))
    with pytest.raises(InputError, match=r"lb0.nii.gz: no voxel of the sampled classes \[2\] where a patch"):
        next(LabelSampler((16, 16, 8), "label", {0: 0, 1: 0, 2: 1}, shift=False)(subj, 1))
    patch = next(LabelSampler((16, 16, 8), "label", {0: 0, 1: 0, 2: 1})(subj, 1))
    assert patch[tio.LOCATION][:3].tolist() == [0, 0, 0] and int(patch["label"].data.max()) == 2
    nib.save(nib.Nifti1Image(np.zeros_like(label), np.eye(4)), path)
    with pytest.raises(InputError, match=r"lb0.nii.gz: no voxel of the sampled classes \[2\] in it"):
        next(LabelSampler((16, 16, 8), "label", {0: 0, 1: 0, 2: 1})(tio.Subject(label=tio.LabelMap(path)), 1))


def test_shifted_patches_hold_the_weighted_class_where_torchio_cannot_centre_them():
    """The synthetic reproduction's case: a thin volume padded to the patch's slices leaves
    TorchIO one admissible slice; tumour off it is never a centre. Shifted, the tumour's
    weight share of patches (4 of 7) holds tumour, and each patch stays inside the volume."""
    label = np.zeros((48, 40, 12), np.uint8)
    label[8:40, 8:32, :] = 1
    label[20:24, 20:23, 1:3] = 2  # tumour in slices 1-2; patches of 12 slices: TorchIO centres only on slice 6
    subj = tio.Subject(label=tio.LabelMap(tensor=torch.from_numpy(label)[None]))
    weights, patch = {0: 1, 1: 2, 2: 4}, (32, 16, 12)
    shares = {}
    for shift in (False, True):
        torch.manual_seed(0)
        patches = list(LabelSampler(patch, "label", weights, shift=shift)(subj, 700))
        shares[shift] = np.mean([int(p["label"].data.max()) == 2 for p in patches])
        for p in patches:
            location = p[tio.LOCATION].numpy()
            assert (location[:3] >= 0).all() and (location[3:] <= label.shape).all()
    assert shares[True] >= 4 / 7 - 0.05
    assert shares[True] > shares[False] + 0.3


def test_float_label_map_is_refused():
    subj = tio.Subject(label=tio.LabelMap(tensor=torch.zeros(1, 16, 16, 8)))
    with pytest.raises(InputError, match="one-channel integer label map"):
        next(LabelSampler((8, 8, 4), "label", {0: 1})(subj, 1))


def test_attached_distribution_is_taken_off_and_used(tmp_path):
    """The dataset attaches the distribution (in a worker); the sampler takes it off the
    subject, so the patches carry no such entry and collate into batches."""
    subj = subject((64, 48, 20))
    sampler = LabelSampler((32, 32, 16), "label", {0: 1, 1: 2, 2: 4})
    assert sampler.shift  # training's default
    dataset = PatchSubjectsDataset([subj], tio.Compose([]), sampler)
    loaded = dataset[0]
    assert isinstance(loaded[CENTRES].block_ends, np.ndarray)
    torch.manual_seed(4)
    patches = list(sampler(loaded, 3))
    assert CENTRES not in loaded and all(CENTRES not in p for p in patches)
    torch.manual_seed(4)
    again = list(sampler(subj, 3))  # computed on the spot: the same patches
    assert all(torch.equal(a[tio.LOCATION], b[tio.LOCATION]) for a, b in zip(patches, again))


@pytest.mark.parametrize("workers", [0, 2])
def test_training_batches_equal_torchio_queue(tmp_path, workers):
    """What training consumes: liverseg's dataset, augmentation and sampler (in TorchIO's
    centre rule, shift=False) give, batch for batch, what TorchIO's own transforms, dataset
    and LabelSampler give in the same queue under the same seed, with and without queue
    workers (their seeds derive from the main process's; the distributions are computed in
    the workers)."""
    records = []
    for n in range(3):
        image, label = phantom(shape=(48, 40, 20), seed=n)
        write_pair(tmp_path, n, image, label, np.diag([0.8, 0.8, 3.0, 1.0]))
        records.append(
            {
                "subject": f"im{n}",
                "image": str(tmp_path / "imagesTr" / f"im{n}.nii.gz"),
                "label": str(tmp_path / "labelsTr" / f"lb{n}.nii.gz"),
            }
        )
    cfg = TrainingConfig.from_mapping(
        {
            "learning_rate": 0.01,
            "batch_size": 2,
            "max_epochs": 1,
            "patience": 1,
            "iterations_per_epoch": 6,
            "samples_per_volume": 4,
            "queue_length": 8,
            "num_workers": workers,
            "label_probabilities": {"background": 1, "liver": 2, "tumor": 4},
        }
    )
    augmentation = {key: 0.5 for key in augment.AUGMENTATIONS}
    patch = (32, 32, 16)
    dataset, sampler = training_patches(records, "multiclass", patch, augmentation, cfg)
    assert sampler.shift  # what training draws with; TorchIO's rule for the comparison
    torchio_rule = LabelSampler(patch, "label", sampler.label_probabilities_dict, shift=False)
    ours = (PatchSubjectsDataset(dataset._subjects, dataset._transform, torchio_rule), torchio_rule)
    theirs = (
        tio.SubjectsDataset(
            [augment.torchio_subject(r, "multiclass") for r in records],
            transform=augment.training_transform(augmentation, patch, torchio_reference=True),
        ),
        tio.LabelSampler(patch, label_name="label", label_probabilities=cfg.sampler_probabilities("multiclass")),
    )
    batches = []
    for dataset, sampler in (ours, theirs):
        torch.manual_seed(9)
        stream = patch_batches(dataset, sampler, cfg)
        batches.append([next(stream) for _ in range(cfg.iterations_per_epoch)])
    for a, b in zip(*batches):
        assert torch.equal(a[tio.LOCATION], b[tio.LOCATION])
        assert torch.equal(a["image"][tio.DATA], b["image"][tio.DATA])
        assert torch.equal(a["label"][tio.DATA], b["label"][tio.DATA])
