"""What a trained classifier responds to: saliency, Grad-CAM on a named stage, first-layer filters.

``visionsuite explain --config C --ckpt_path best|last|PATH [--stage stage2] [--images 8]
[--output DIR]`` writes ``explanations.png`` (each test image beside its saliency and Grad-CAM
maps, labelled with the predicted class and probability), ``activations_<stage>.png`` (the stage's 16 most active channels for the first image) and
``filters.png``. During training, :class:`~visionsuite.outputs.ExplanationFigures` logs the
saliency and Grad-CAM of fixed validation images after every validation. The maps are
computed in :mod:`visionsuite.models.explanations`.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from visionsuite.core.tool_parser import ToolParser
from visionsuite.errors import ConfigError
from visionsuite.models.explanations import (  # noqa: F401  (ExplainError: raised by the maps)
    ExplainError,
    activation_maps,
    first_conv_filters,
    grad_cam,
    saliency,
    stage_module,
)
from visionsuite.outputs.figures import explanation_figure, predicted_captions, titled_picture
from visionsuite.outputs.images import write_png
from visionsuite.runs.folders import tool_output_dir


def main(args: list[str]) -> int:
    import torch
    from torchvision.utils import make_grid

    from visionsuite.data.augment import to_float
    from visionsuite.tools.export import Deployable
    from visionsuite.tools.source import add_source_arguments, load_source

    parser = ToolParser(prog="visionsuite explain", description=__doc__.splitlines()[0])
    add_source_arguments(parser)
    parser.add_argument("--stage", default=None, help="Grad-CAM stage (default: the last backbone stage)")
    parser.add_argument("--images", type=int, default=8, help="how many test images")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder of the figures (default: a new <stamp>-explain folder beside the run)")
    opts = parser.parse_args(args)
    if opts.images < 1:
        raise ConfigError(f"--images {opts.images}: explain needs at least 1 test image")
    trained = load_source(opts)
    if getattr(trained.task, "target_key", None) != "label" or not hasattr(trained.task, "model"):
        raise ConfigError(
            f"explain is for classification runs; {trained.ckpt} is a {type(trained.task).__name__}"
            " (segmentation and detection runs draw their overlays in test/predict)"
        )
    backbone = trained.task.model
    stage = opts.stage or list(getattr(backbone, "stages", {"?": None}).keys())[-1]
    layer = stage_module(backbone, stage)
    images = to_float(trained.test_batch(opts.images)["image"])
    model = Deployable(trained.task, trained.normalisation).eval()
    opts.output = opts.output or tool_output_dir(trained.ckpt, "explain")
    opts.output.mkdir(parents=True, exist_ok=True)
    written = []
    maps = {"saliency": saliency(model, images), f"Grad-CAM {stage}": grad_cam(model, layer, images)}
    with torch.no_grad():
        captions = predicted_captions(model(images).float().softmax(-1), trained.class_names)
    path = opts.output / "explanations.png"
    figure = explanation_figure(images, maps, captions, title=f"{trained.ckpt.name}: predicted class and probability per row")
    write_png(figure, path)
    written.append(path)
    acts = activation_maps(model, layer, images)
    path = opts.output / f"activations_{stage}.png"
    grid = make_grid(nn.functional.interpolate(acts, size=images.shape[-2:], mode="nearest"), nrow=4, padding=2, pad_value=1)
    write_png(titled_picture(grid, f"{stage}: its {len(acts)} most active channels on the first test image ({captions[0].replace(chr(10), ' ')})"), path)
    written.append(path)
    filters = first_conv_filters(backbone)
    if filters.shape[1] not in (1, 3):
        filters = filters.mean(1, keepdim=True)
    grid = make_grid(nn.functional.interpolate(filters, scale_factor=8, mode="nearest"), nrow=8, padding=2, pad_value=1)
    write_png(titled_picture(grid, f"first-layer filters ({len(filters)}, each scaled to [0, 1])"), opts.output / "filters.png")
    written.append(opts.output / "filters.png")
    print("Wrote " + ", ".join(str(p) for p in written))
    return 0
