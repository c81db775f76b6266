"""Soft labels: the stream's class probabilities, moved with the mask, and the loss on them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_stream import random_interpreter, stream, take, tiny_generator

from dgan_data.augment import BatchAugment
from dgan_data.downstream.train import real_batches, soft_cross_entropy, train_segmentation
from dgan_data.labeler import Labeler
from dgan_data.stream import IGNORE_INDEX

K = 5


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    G = tiny_generator()
    return G, random_interpreter(G)


def one_hot(masks: torch.Tensor, k: int = K) -> torch.Tensor:
    return F.one_hot(masks, k).permute(0, 3, 1, 2).float()


# ------------------------------------------------------------------ the loss
def test_soft_cross_entropy_on_one_hot_labels_is_the_hard_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, K, 6, 7, generator=g)
    masks = torch.randint(0, K, (2, 6, 7), generator=g)
    masks[0, :2] = IGNORE_INDEX
    valid = masks != IGNORE_INDEX
    probs = one_hot(masks.clamp(max=K - 1))
    hard = F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX)
    assert soft_cross_entropy(logits, probs, valid) == pytest.approx(float(hard), rel=1e-6)


def test_soft_cross_entropy_weighs_every_class_by_its_probability():
    logits = torch.tensor([[1.0, 2.0, 0.5]]).view(1, 3, 1, 1)
    probs = torch.tensor([[0.5, 0.3, 0.2]]).view(1, 3, 1, 1)
    logp = torch.log_softmax(torch.tensor([1.0, 2.0, 0.5]), 0)
    expected = -(0.5 * logp[0] + 0.3 * logp[1] + 0.2 * logp[2])
    valid = torch.ones(1, 1, 1, dtype=torch.bool)
    assert float(soft_cross_entropy(logits, probs, valid)) == pytest.approx(float(expected))


def test_soft_labels_of_another_shape_are_refused():
    with pytest.raises(ValueError, match="soft labels \\(1, 4, 3, 3\\) do not match"):
        soft_cross_entropy(
            torch.zeros(1, 5, 3, 3), torch.zeros(1, 4, 3, 3), torch.ones(1, 3, 3, dtype=bool)
        )


def test_training_follows_the_soft_labels_not_the_mask():
    # the mask says class 0 everywhere, the probabilities say class 2: a student trained on
    # dict batches with probs must learn class 2
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, K, 1)
    images = torch.rand(4, 3, 8, 8)
    masks = torch.zeros(4, 8, 8, dtype=torch.long)
    probs = one_hot(torch.full((4, 8, 8), 2))
    batches = real_batches(images, masks, 4, augment=None, probs=probs)
    train_segmentation(net, batches, 60, lr=0.05, progress=False)
    with torch.no_grad():
        assert bool((net(images).argmax(1) == 2).all())


# ------------------------------------------------------------- augmentation
def test_warped_probabilities_follow_the_warped_mask():
    g = torch.Generator().manual_seed(3)
    coarse = torch.randint(0, K, (6, 4, 4), generator=g)
    masks = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)  # 32 x 32, 8 px blocks
    images = torch.rand(6, 3, 32, 32, generator=g)
    aug = BatchAugment()
    params = aug.sample_params(6, torch.Generator().manual_seed(5))
    _, warped = aug.apply(images, masks, params)
    probs = aug.warp_probabilities(one_hot(masks), params)
    assert probs.shape == (6, K, 32, 32)
    sums = probs.sum(1)
    inside = sums > 0
    assert torch.allclose(sums[inside], torch.ones_like(sums[inside]), atol=1e-5)
    # inside a block, bilinear and nearest agree: a sure pixel's class is the mask's
    sure = (probs.max(1).values > 0.999) & (warped != IGNORE_INDEX)
    assert sure.float().mean() > 0.5
    assert torch.equal(probs.argmax(1)[sure], warped[sure])
    # a pixel from outside the frame has no probability and no label
    assert bool((warped[~inside] == IGNORE_INDEX).all())


def test_flip_moves_probabilities_exactly_as_the_mask():
    aug = BatchAugment(scale=None, translate=None, rotate=None, hflip=1.0)
    masks = torch.randint(0, K, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    params = aug.sample_params(2, torch.Generator().manual_seed(0))
    _, warped = aug.apply(torch.rand(2, 3, 8, 8), masks, params)
    probs = aug.warp_probabilities(one_hot(masks), params)
    assert torch.equal(warped, masks.flip(-1))
    assert torch.allclose(probs, one_hot(masks.flip(-1)), atol=1e-6)


def test_soft_batches_have_the_hard_batches_images_and_masks():
    g = torch.Generator().manual_seed(1)
    images, masks = torch.rand(5, 3, 16, 16, generator=g), torch.randint(0, K, (5, 16, 16))
    hard = real_batches(images, masks, 3, seed=2)
    soft = real_batches(images, masks, 3, seed=2, probs=one_hot(masks).half())
    for _ in range(4):  # across an epoch boundary
        (img, mask), item = next(hard), next(soft)
        assert torch.equal(item["image"], img) and torch.equal(item["mask"], mask)
        assert item["probs"].dtype == torch.float16
        labeled = mask != IGNORE_INDEX
        sure = (item["probs"].float().max(1).values > 0.999) & labeled
        assert torch.equal(item["probs"].argmax(1)[sure], mask[sure])


def test_soft_batches_refuse_misshapen_probabilities_and_other_augmentations():
    images, masks = torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="probs must be \\(N, K, H, W\\)"):
        next(real_batches(images, masks, 2, probs=torch.zeros(2, K, 8, 4)))
    with pytest.raises(ValueError, match="soft labels need augment None or a BatchAugment"):
        next(real_batches(images, masks, 2, augment=lambda i, m, g: (i, m), probs=one_hot(masks)))


# ------------------------------------------------------------------ the stream
def test_stream_yields_the_ensembles_probabilities_with_its_labels(tiny):
    items = take(stream(tiny, output="dict", soft_labels=True, drop_uncertain=0.0), 2)
    for item in items:
        probs, mask = item["probs"], item["mask"]
        assert probs.shape == (4, K, 16, 16) and probs.dtype == torch.float16
        p = probs.float()
        assert torch.allclose(p.sum(1), torch.ones(4, 16, 16), atol=5e-3)
        # the label is the argmax of the mean probabilities (up to float16 rounding)
        at_label = p.gather(1, mask.as_subclass(torch.Tensor).unsqueeze(1)).squeeze(1)
        assert bool((at_label >= p.max(1).values - 2e-3).all())
    # the hard items are those of the same stream without soft labels
    plain = take(stream(tiny, output="dict", drop_uncertain=0.0), 2)
    for a, b in zip(items, plain, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        assert "probs" not in b


def test_augmented_stream_moves_probabilities_with_images_and_masks(tiny):
    kw = {"output": "dict", "augment": "default", "drop_uncertain": 0.0}
    soft = take(stream(tiny, soft_labels=True, **kw), 2)
    hard = take(stream(tiny, **kw), 2)
    outside_pixels = 0
    for a, b in zip(soft, hard, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        probs, mask = a["probs"].float(), a["mask"].as_subclass(torch.Tensor)
        outside = probs.sum(1) == 0
        outside_pixels += int(outside.sum())
        assert bool((mask[outside] == IGNORE_INDEX).all())
        # moved with the mask: the likeliest class is the label almost everywhere (bilinear
        # and nearest differ only on borders)
        labeled = mask != IGNORE_INDEX
        agree = (probs.argmax(1) == mask)[labeled].float().mean()
        assert agree > 0.9
    assert outside_pixels > 0  # the warp did bring in pixels from outside the frame


def test_transform_moves_probabilities_with_the_mask(tiny):
    from torchvision.transforms import v2

    kw = {"output": "dict", "soft_labels": True, "drop_uncertain": 0.0}
    plain = take(stream(tiny, **kw), 1)[0]
    flipped = take(stream(tiny, transform=v2.RandomHorizontalFlip(p=1.0), **kw), 1)[0]
    assert torch.equal(flipped["mask"], plain["mask"].flip(-1))
    assert torch.equal(flipped["probs"], plain["probs"].flip(-1))
    resized = take(stream(tiny, transform=v2.Resize((8, 8)), **kw), 1)[0]
    assert resized["probs"].shape == (4, K, 8, 8) and resized["mask"].shape == (4, 8, 8)
    # nearest resampling: each probability vector is one of the source's, labels follow it
    at_label = resized["probs"].float().gather(1, resized["mask"].unsqueeze(1).long())
    assert bool((at_label.squeeze(1) >= resized["probs"].float().max(1).values - 2e-3).all())


def test_labeler_probabilities_are_the_ensembles_mean(tiny):
    G, interp = tiny
    lab = Labeler(G, interp, device="cpu")
    seeds = [3, 9]
    batch = lab.label(seeds, probs=True)
    img, feats = lab.synthesize(seeds)
    reference = interp.naive_predict(
        interp.prediction_maps(feats, img), lab.frame, return_probs=True
    ).probs
    assert batch.probs.dtype == torch.float16
    assert torch.allclose(batch.probs.float(), reference, atol=1e-3)
    assert lab.label(seeds).probs is None
    assert torch.equal(batch.select(torch.tensor([1])).probs, batch.probs[1:])


def test_soft_stream_resumes_exactly(tiny):
    kw = {"output": "dict", "soft_labels": True, "batch_size": None, "generation_batch": 3}
    ds = stream(tiny, **kw)
    whole = take(ds, 7)
    first = stream(tiny, **kw)
    it = iter(first)
    for _ in range(4):
        next(it)
    state = first.state_dict()
    resumed = stream(tiny, **kw)
    resumed.load_state_dict(state)
    rest = take(resumed, 3)
    for a, b in zip(whole[4:], rest, strict=True):
        assert torch.equal(a["probs"], b["probs"]) and torch.equal(a["mask"], b["mask"])
    plain = stream(tiny, output="dict", batch_size=None, generation_batch=3)
    with pytest.raises(ValueError, match="soft_labels"):
        plain.load_state_dict(state)


def test_state_saved_before_soft_labels_existed_resumes_as_hard_labels(tiny):
    # states saved before the setting existed lack it (in the settings and in the identity)
    kw = {"output": "dict", "batch_size": None, "generation_batch": 3}
    whole = take(stream(tiny, **kw), 7)
    first = stream(tiny, **kw)
    it = iter(first)
    for _ in range(4):
        next(it)
    state = first.state_dict()
    del state["soft_labels"], state["identity"]["soft_labels"]
    resumed = stream(tiny, **kw)
    resumed.load_state_dict(state)
    for a, b in zip(whole[4:], take(resumed, 3), strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    soft = stream(tiny, soft_labels=True, **kw)
    with pytest.raises(ValueError, match="soft_labels=False \\(this stream: True\\)"):
        soft.load_state_dict(state)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"output": "tensor"}, 'soft_labels=True needs output="dict"'),
        ({"output": "dict", "augment": lambda i, m, g: (i, m)}, "needs augment None, 'default'"),
        ({"output": "dict", "soft_labels": 1}, "soft_labels must be True or False"),
    ],
)
def test_soft_labels_refuse_what_cannot_carry_them(tiny, kw, message):
    kw = {"soft_labels": True, **kw}
    with pytest.raises(ValueError, match=message):
        stream(tiny, **kw)


def test_a_fill_per_type_marks_pixels_a_transform_brings_in_as_ignored(tiny):
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    kw = {"output": "dict", "soft_labels": True, "drop_uncertain": 0.0}
    plain = take(stream(tiny, **kw), 1)[0]
    # torchvision's default fills a Mask with 0: the padded border would read as class 0
    default = take(stream(tiny, transform=v2.Pad(2), **kw), 1)[0]
    assert bool((default["mask"][..., :2, :] == 0).all())
    fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE_INDEX}
    padded = take(stream(tiny, transform=v2.Pad(2, fill=fill), **kw), 1)[0]
    border = torch.ones(padded["mask"].shape[-2:], dtype=torch.bool)
    border[2:-2, 2:-2] = False
    assert bool((padded["mask"][..., border] == IGNORE_INDEX).all())
    assert torch.equal(padded["mask"][..., 2:-2, 2:-2], plain["mask"])
    assert torch.equal(padded["probs"][..., 2:-2, 2:-2], plain["probs"])
    # the loss skips the filled pixels, whatever the probabilities hold there
    logits = torch.randn(padded["probs"].shape)
    valid = padded["mask"] != IGNORE_INDEX
    inner = soft_cross_entropy(
        logits[..., 2:-2, 2:-2], plain["probs"], plain["mask"] != IGNORE_INDEX
    )
    assert float(soft_cross_entropy(logits, padded["probs"], valid)) == pytest.approx(
        float(inner), rel=1e-5
    )
