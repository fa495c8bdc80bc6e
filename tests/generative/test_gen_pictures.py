"""Sample grids, reconstructions, interpolations, the 2-D latent pictures and the GIF."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from visionsuite.models.generative import denormalize
from visionsuite.models.generative.pixels import normalize, to_signed, to_unit
from visionsuite.outputs.generative_pictures import (
    image_grid,
    interpolation_grid,
    latent_scatter,
    latent_scatter_figure,
    manifold_grid,
    save_gif,
    save_png,
)


def test_pixel_round_trips() -> None:
    x = torch.rand(2, 3, 4, 4)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    assert torch.allclose(denormalize(normalize(x, mean, std), mean, std), x, atol=1e-6)
    assert torch.allclose(to_unit(to_signed(x)), x, atol=1e-6)


def test_image_grid_is_uint8_rgb() -> None:
    grid = image_grid(torch.rand(16, 1, 28, 28), nrow=8, padding=2)
    assert grid.dtype == torch.uint8 and grid.shape == (3, 2 * 30 + 2, 8 * 30 + 2)


def test_interpolation_runs_between_the_endpoints() -> None:
    decode = lambda z: z[:, :1, None, None].expand(-1, 1, 2, 2)  # noqa: E731  pixel = z₁
    grid = interpolation_grid(decode, torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), steps=5)
    cells = [grid[0, 2, 2 + 4 * i].item() for i in range(5)]  # cell i starts at 2 + i·(2 + 2)
    assert cells == [0, 64, 128, 191, 255]


def test_manifold_grid_uses_normal_quantiles() -> None:
    seen: list[torch.Tensor] = []

    def decode(z: torch.Tensor) -> torch.Tensor:
        seen.append(z)
        return torch.zeros(z.shape[0], 1, 3, 3)

    grid = manifold_grid(decode, n=4)
    z = seen[0]
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert grid.shape == (3, 12, 12)
    assert torch.allclose(z[:4, 0], q) and torch.allclose(z[0::4, 1], q.flip(0))  # z₁ across, z₂ down


def test_latent_scatter_draws_class_colours() -> None:
    z = torch.randn(200, 2)
    labels = torch.arange(200) % 3
    image = latent_scatter(z, labels, ["a", "b", "c"], size=3, dpi=50, alpha=1.0)
    assert image.dtype == torch.uint8 and image.shape == (3, 150, 150)
    colours = {tuple(p) for p in image.permute(1, 2, 0).reshape(-1, 3).tolist()}
    assert {(31, 119, 180), (255, 127, 14), (44, 160, 44)} <= colours  # tab10's first three
    with pytest.raises(ValueError, match="2-D"):
        latent_scatter(torch.randn(5, 3), labels[:5])


def test_latent_scatter_gives_each_class_its_own_marker_shape_too() -> None:
    """Readable in greyscale print: the classes differ by marker shape as well as colour, in the plot and its legend."""
    z = torch.randn(240, 2)
    labels = torch.arange(240) % 12  # beyond tab10's ten colours: the (colour, shape) pairs still differ
    ax = latent_scatter_figure(z, labels, [f"k{i}" for i in range(12)]).axes[0]
    shapes = [coll.get_paths()[0].vertices.round(3).tobytes() for coll in ax.collections]
    assert len(ax.collections) == 12 and len(set(shapes[:10])) == 10
    colours = [tuple(coll.get_facecolor()[0].round(3)) for coll in ax.collections]
    assert len(set(zip(colours, shapes, strict=True))) == 12
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [f"k{i}" for i in range(12)]
    assert [h.get_paths()[0].vertices.round(3).tobytes() for h in legend.legend_handles] == shapes


def test_gif_has_one_frame_per_grid(tmp_path) -> None:
    frames = [image_grid(torch.full((4, 1, 8, 8), v / 5)) for v in range(5)]
    path = save_gif(frames, tmp_path / "run" / "samples.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        gif.seek(3)
        assert abs(gif.convert("L").getpixel((5, 5)) - 153) <= 2
    labelled = save_gif(frames, tmp_path / "labelled.gif", labels=[f"epoch {i}" for i in range(5)])
    with Image.open(labelled) as gif:  # a white band with dark text under each grid
        band = np.asarray(gif.convert("L"))[frames[0].shape[1] :]
        assert gif.size[1] > frames[0].shape[1] and band.max() == 255 and band.min() < 100
    with pytest.raises(ValueError, match="2 label"):
        save_gif(frames, tmp_path / "x.gif", labels=["a", "b"])
    png = save_png(frames[2], tmp_path / "grid.png")
    assert Image.open(png).size == (frames[2].shape[2], frames[2].shape[1])
