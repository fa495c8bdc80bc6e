"""``visionsuite summary``: the course's numbers for AlexNet and VGG-16, and the CLI's errors."""

from __future__ import annotations

import pytest

from visionsuite.backbones import create_backbone
from visionsuite.tools.summary import main, measure_forward_memory, summarize


@pytest.fixture(scope="module")
def vgg16_summary():
    return summarize(create_backbone("vgg16"), (3, 224, 224))


def test_alexnet_conv1_and_pool1_match_the_course() -> None:
    summary = summarize(create_backbone("alexnet"), (3, 227, 227))
    conv1, pool1 = summary.row("CONV1"), summary.row("MAXPOOL1")
    assert conv1.output_shape == (96, 55, 55)
    assert (conv1.weights, conv1.biases) == (34_848, 96)  # 11 x 11 x 3 x 96 weights + 96 biases
    assert conv1.activations == 55 * 55 * 96
    assert conv1.flops == 2 * 55 * 55 * 96 * 11 * 11 * 3  # FLOPs = 2 x multiply-accumulates
    assert pool1.output_shape == (96, 27, 27) and pool1.params == 0
    assert summary.total_params == 62_378_344


def test_vgg16_totals_match_the_course(vgg16_summary) -> None:
    s = vgg16_summary
    assert s.total_params == 138_357_544
    assert s.param_mb == pytest.approx(552, rel=0.01)  # 138M x 4 bytes
    assert s.activations == pytest.approx(15.2e6, rel=0.02)  # ~15M numbers per image
    assert s.activations * 4 / 1e6 == pytest.approx(60, rel=0.03)  # ~60 MB per image, forward only
    assert s.training_mb > 1100  # "> 1.1 GB" once back-propagation is counted
    assert s.flops == pytest.approx(31e9, rel=0.02)  # 15.5 G multiply-adds
    assert s.row("CONV1").output_shape == (64, 224, 224)


def test_in_place_and_view_layers_allocate_nothing(vgg16_summary) -> None:
    relus = [r for r in vgg16_summary.rows if r.kind == "ReLU"]
    assert relus and all(r.activations == 0 for r in relus)
    assert all(r.activations == 0 for r in vgg16_summary.rows if r.kind in ("Flatten", "Dropout"))


def test_residual_sums_get_functional_rows() -> None:
    summary = summarize(create_backbone("tv/mobilenet_v2"), (3, 64, 64))
    functional = [r for r in summary.rows if r.kind.endswith("(functional)")]
    assert len(functional) == 10  # the inverted residual blocks with a skip connection
    assert all(r.activations > 0 and r.params == 0 for r in functional)


def test_activation_memory_matches_what_autograd_keeps() -> None:
    """The summary's activations (minus the input) against torch.profiler's count of what one
    forward with gradients leaves allocated. ResNet-18's extra is its max-pool's int64 indices."""
    model = create_backbone("tv/resnet18").eval()
    summary = summarize(model, (3, 64, 64), batch_size=4)
    estimate = (summary.activations - summary.rows[0].activations) * 4 * 4 / 1e6
    measured = measure_forward_memory(model, (3, 64, 64), batch_size=4)
    assert measured.retained_mb == pytest.approx(estimate, rel=0.10)
    assert measured.peak_mb >= measured.retained_mb


def test_cli_prints_the_table(capsys) -> None:
    assert main(["alexnet", "--input", "3x227x227"]) == 0
    out = capsys.readouterr().out
    assert "CONV1" in out and "34,848 + 96" in out and "96x55x55" in out and "96x27x27" in out
    assert "62,378,344" in out and "2 x params (weights + gradients)" in out


def test_cli_names_the_fine_tuning_stages(capsys) -> None:
    """What ``frozen_stages`` counts: ResNet's weightless ``maxpool`` is no stage."""
    assert main(["resnet18_cifar", "--input", "3x32x32"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Fine-tuning stages (frozen_stages, unfreeze_at), input side first: stem, layer1, layer2, layer3, layer4")


def test_cli_options_and_batch(capsys) -> None:
    assert main(["lenet5", "--input", "28x28", "--batch_size", "4", "--option", "num_classes=7"]) == 0
    out = capsys.readouterr().out
    assert "1x28x28 input, batch 4" in out and "7" in out.split("FC3")[1].split("\n")[0]


def test_cli_too_small_input_is_one_line_exit_2(capsys) -> None:
    assert main(["vgg16", "--input", "3x16x16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("visionsuite: error:") and "32x32" in err and "\n" not in err


def test_cli_unknown_backbone_is_one_line_exit_2(capsys) -> None:
    assert main(["vgg61"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Unknown backbone 'vgg61'" in err and "vgg16" in err and "\n" not in err


def test_cli_batch_size_below_one_is_refused_by_the_parser() -> None:
    """A usage error is raised for the CLI's one-line handler (exit 2), not printed with the usage block."""
    from visionsuite.core.tool_parser import ToolUsageError

    with pytest.raises(ToolUsageError, match=r"^summary: argument --batch_size: expected a count >= 1, got 0 \(see --help\)$"):
        main(["lenet5", "--batch_size", "0"])
