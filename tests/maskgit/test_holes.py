"""Stroke token masks: the benchmark's own hole procedure, the test holes' size range, contiguous
regions (connected components measured), mirrored picks from a pool, and the training mix."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from maskgit.decoding import pixel_holes_to_token_unknown
from maskgit.holes import draw_from_pool, stroke_mask, stroke_token_masks
from maskgit.training import TrainConfig, hole_mask_count, random_token_mask, training_token_mask

EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=int)


def components(mask: torch.Tensor) -> list[int]:
    """Sizes of the 8-connected regions of one token mask [256] on its 16x16 grid, largest first."""
    labels, count = ndimage.label(mask.reshape(16, 16).numpy(), structure=EIGHT_NEIGHBOURS)
    return sorted(np.bincount(labels.ravel())[1:].tolist(), reverse=True)


def test_components_counts_regions_that_touch_at_corners_as_one():
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one region
    mask[5, 5:9] = True  # a bar of 4
    mask[15, 15] = True
    assert components(mask.flatten()) == [4, 2, 1]


def test_token_masks_are_the_benchmarks_pixel_holes_seen_as_tokens():
    masks = stroke_token_masks(5, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    holes = torch.from_numpy(np.stack([stroke_mask(rng) for _ in range(5)]))
    assert torch.equal(masks, pixel_holes_to_token_unknown(holes, 4))


def test_token_masks_cover_the_test_holes_range_of_tokens():
    """The 747 test holes mask 55 to 164 of the 256 tokens; the same procedure stays in that band
    but for the rare stroke that grazes many tokens."""
    counts = stroke_token_masks(400, np.random.default_rng(0)).sum(1).numpy()
    assert counts.min() >= 50 and counts.max() <= 180
    low, high = np.percentile(counts, [1, 99])
    assert 55 <= low and high <= 164
    assert counts.mean() == pytest.approx(110, abs=8)  # the middle of the band, not one end of it


def test_token_masks_are_a_few_contiguous_regions_unlike_random_tokens():
    masks = stroke_token_masks(300, np.random.default_rng(1))
    regions = [components(m) for m in masks]
    largest_share = np.mean([r[0] / sum(r) for r in regions])
    assert np.mean([len(r) for r in regions]) < 3.5 and largest_share > 0.7
    # random tokens of the same counts scatter into many regions
    g = torch.Generator().manual_seed(0)
    ranks = torch.rand(len(masks), 256, generator=g).argsort(1).argsort(1)
    scattered = ranks < masks.sum(1, keepdim=True)
    assert np.mean([len(components(m)) for m in scattered]) > 3 * np.mean([len(r) for r in regions])


def test_pool_picks_are_the_eight_mirror_images_of_the_pool_mask():
    grid = torch.zeros(16, 16, dtype=torch.bool)
    grid[0, 1] = True
    picks = draw_from_pool(grid.reshape(1, 256), 400, torch.Generator().manual_seed(0))
    positions = {tuple(divmod(int(p.nonzero()), 16)) for p in picks}
    assert positions == {(0, 1), (0, 14), (15, 1), (15, 14), (1, 0), (14, 0), (1, 15), (14, 15)}


@pytest.mark.parametrize(("fraction", "batch", "count"), [(0.25, 32, 8), (0.3, 10, 3), (1.0, 7, 7), (0.0, 9, 0)])
def test_whole_hole_mask_counts_are_exact_every_batch(fraction, batch, count):
    g = torch.Generator().manual_seed(0)
    assert {hole_mask_count(batch, fraction, g) for _ in range(50)} == {count}


def test_fractional_hole_mask_counts_have_the_fraction_as_mean():
    g = torch.Generator().manual_seed(0)
    counts = [hole_mask_count(32, 0.3, g) for _ in range(4000)]  # 9.6 per batch
    assert set(counts) == {9, 10}
    assert np.mean(counts) == pytest.approx(9.6, abs=0.04)  # 5 standard errors


def corner_block_pool() -> torch.Tensor:
    """One 8x8 block in a corner: its mirror images are the four corner blocks, which random masks
    never are, so each hole-shaped sample can be told apart."""
    grid = torch.zeros(16, 16, dtype=torch.bool)
    grid[:8, :8] = True
    return grid.reshape(1, 256)


def is_corner_block(masks: torch.Tensor) -> torch.Tensor:
    grids = masks.reshape(-1, 16, 16)
    return (grids.sum((1, 2)) == 64) & torch.stack([grids[:, :8, :8].all((1, 2)), grids[:, :8, 8:].all((1, 2)),
                                                    grids[:, 8:, :8].all((1, 2)), grids[:, 8:, 8:].all((1, 2))]).any(0)


def test_training_masks_mix_hole_shapes_in_the_stated_fraction():
    cfg, g = TrainConfig(hole_masks=0.3), torch.Generator().manual_seed(0)
    holes = [is_corner_block(training_token_mask(32, 256, cfg, g, corner_block_pool())) for _ in range(500)]
    shares = torch.stack(holes).float()
    assert shares.mean().item() == pytest.approx(0.3, abs=0.01)
    for batch in holes:  # the hole-shaped samples lead the (randomly ordered) batch
        count = int(batch.sum())
        assert batch[:count].all() and not batch[count:].any()


def test_training_masks_without_a_pool_are_maskgits_random_masks():
    cfg = TrainConfig()
    a = training_token_mask(16, 256, cfg, torch.Generator().manual_seed(5), None)
    b = random_token_mask(16, 256, cfg.mask_schedule, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
