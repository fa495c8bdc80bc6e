"""The README's commands run: a command in a ```bash block that rots fails here.

Every ``visionsuite …`` line of a ```bash block is a command a user copies as it is (syntax
summaries with placeholders live in ```text blocks). Each block runs in order, in a scratch
folder that has the checkout's ``configs/`` and ``data/`` (so ``--run latest`` means the block's
own newest fit; the quickstart blocks share one folder, in order, as a reader runs them), with tiny overrides appended: training is a couple of batches, evaluation one
batch. By default the quickstart blocks run this way and every other ``fit`` line is resolved
with ``--print_config`` (its config file and every override must exist); ``pytest -m slow``
runs every block.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionsuite.cli.app import main

README = Path(__file__).parents[1] / "README.md"
ROOT = README.parent
#: where the blocks that run by default are: the quickstart section.
QUICKSTART = "## Quickstart"

#: appended to each subcommand (later options win): a couple of batches of training, one of evaluation.
TINY = {
    "fit": ["--trainer.max_epochs", "1", "--trainer.max_steps", "2", "--trainer.max_time", "null",
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
            "--trainer.num_sanity_val_steps", "0"],
    "test": ["--trainer.limit_test_batches", "1"],
    "validate": ["--trainer.limit_val_batches", "1"],
    "predict": ["--trainer.limit_predict_batches", "1"],
    "export": ["--check_images", "4"],
    "explain": ["--images", "2"],
}  # fmt: skip


def bash_blocks(text: str) -> list[tuple[str, list[list[str]]]]:
    """``(section heading, commands)`` of each ```bash block that has ``visionsuite`` commands;
    a command is its argv after ``visionsuite`` (``\\`` continuations joined, comments dropped)."""
    blocks = []
    for match in re.finditer(r"```bash\n(.*?)```", text, re.S):
        heading = next((h for h in reversed(re.findall(r"^#+ .*$", text[: match.start()], re.M))), "")
        joined = match.group(1).replace("\\\n", " ")
        commands = [shlex.split(line, comments=True)[1:] for line in joined.splitlines() if line.strip().startswith("visionsuite ")]
        if commands:
            blocks.append((heading, commands))
    return blocks


def _quickstart(text: str) -> set[int]:
    """Indices (into :func:`bash_blocks`) of the quickstart section's blocks."""
    start = text.index(QUICKSTART)
    end = text.index("\n## ", start + 1)
    inside = [m for m in re.finditer(r"```bash\n(.*?)```", text, re.S) if "visionsuite " in m.group(1)]
    return {i for i, m in enumerate(inside) if start < m.start() < end}


def tiny(argv: list[str]) -> list[str]:
    return [*argv, *TINY.get(argv[0], [])] if argv else argv


def _checkout_like(tmp_path: Path, data_root: Path) -> Path:
    """A folder laid out like the checkout (``configs/``, ``data/``), with ``my_images/``."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    (tmp_path / "data").symlink_to(data_root)
    images = tmp_path / "my_images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(images / f"img{i}.png")
    return tmp_path


@pytest.fixture()
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path, mirror: Path) -> Path:
    """A fresh checkout-like folder, the working directory of the test."""
    monkeypatch.chdir(_checkout_like(tmp_path, data_root))
    return tmp_path


@pytest.fixture(scope="module")
def _quickstart_folder(tmp_path_factory: pytest.TempPathFactory, data_root: Path, mirror: Path) -> Path:
    return _checkout_like(tmp_path_factory.mktemp("quickstart"), data_root)


@pytest.fixture()
def quickstart_folder(_quickstart_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One folder for every quickstart block, run in the README's order, as a reader does."""
    monkeypatch.chdir(_quickstart_folder)
    return _quickstart_folder


def run_block(commands: list[list[str]]) -> list[tuple[str, int]]:
    """Each command with its tiny overrides, in order; ``(command, exit status)`` of each."""
    done = []
    for argv in commands:
        with contextlib.redirect_stdout(io.StringIO()):
            status = main(tiny(argv))
        done.append((shlex.join(["visionsuite", *argv]), status))
    return done


def test_the_readme_has_runnable_blocks_and_every_family_a_quickstart() -> None:
    text = README.read_text()
    blocks = bash_blocks(text)
    quick = [blocks[i] for i in sorted(_quickstart(text))]
    assert len(quick) >= 7
    configs = " ".join(" ".join(argv) for _, commands in quick for argv in commands)
    for family in ("classification/", "segmentation/", "detection/", "generative/fmnist_vae", "generative/fmnist_dcgan",
                   "transfer/", "ensemble ", "export ", "predict-exported "):  # fmt: skip
        assert family in configs, family
    for _, commands in blocks:
        for argv in commands:
            assert "…" not in argv and not any(a.startswith("<") for a in argv), argv  # placeholders go in ```text


@pytest.mark.parametrize("index", sorted(_quickstart(README.read_text())))
def test_quickstart_block_runs(index: int, quickstart_folder: Path) -> None:
    heading, commands = bash_blocks(README.read_text())[index]
    failed = [(cmd, status) for cmd, status in run_block(commands) if status != 0]
    assert not failed, f"{heading}: {failed}"


def test_every_other_fit_line_resolves(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = README.read_text()
    quick = _quickstart(text)
    fits = [argv for i, (_, commands) in enumerate(bash_blocks(text)) if i not in quick for argv in commands if argv[0] == "fit"]
    assert len(fits) >= 5
    failed = []
    for argv in fits:
        failed += [(shlex.join(argv), status)] if (status := _print_config(argv)) else []
    assert not failed, failed
    assert _print_config(["fit", "--config", "configs/classification/lenet5_fashion_mnist.yaml", "--model.init_args.lrr", "1"]) == 2


def _print_config(argv: list[str]) -> int:
    """Exit status of ``argv --print_config`` (it exits 0 once it has printed the config)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return main([*argv, "--print_config"])
    except SystemExit as stop:
        return 0 if stop.code is None else int(stop.code)


def test_a_broken_readme_command_is_caught(scratch: Path) -> None:
    """The checks above on a copy of the README with one command broken (a config renamed)."""
    broken = README.read_text().replace("configs/classification/lenet5_wide_fashion_mnist_fast.yaml",
                                        "configs/classification/lenet5_wide_fashion_mnist_fastest.yaml", 1)  # fmt: skip
    _, commands = next(block for block in bash_blocks(broken) if "fastest" in str(block))
    assert run_block(commands[:1]) == [(shlex.join(["visionsuite", *commands[0]]), 2)]


@pytest.mark.slow
@pytest.mark.parametrize("index", [i for i in range(len(bash_blocks(README.read_text()))) if i not in _quickstart(README.read_text())])
def test_every_other_block_runs(index: int, scratch: Path) -> None:
    heading, commands = bash_blocks(README.read_text())[index]
    failed = [(cmd, status) for cmd, status in run_block(commands) if status != 0]
    assert not failed, f"{heading}: {failed}"
