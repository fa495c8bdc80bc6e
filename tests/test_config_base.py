"""The config base (``visionsuite/cli/base.yaml``, package data): read before every ``--config``, so the shipped configs leave out the
trainer and logger settings they share, and a config without them gets the base's."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from visionsuite.cli.app import BASE_CONFIG, main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p != BASE_CONFIG and p.parent.name != "logger")


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"trainer.devices": 1, "trainer.logger": {...}}``: a class_path entry counts as one leaf."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and "class_path" not in value:
            out |= _leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal values; two class_path entries are the same when they name one class (a logger's
    save_dir is the run folder whatever a config says)."""
    if isinstance(a, dict) and isinstance(b, dict) and "class_path" in b:
        return a.get("class_path") == b["class_path"]
    return a == b


def _resolved(argv: list[str]) -> dict[str, Any]:
    """The config ``argv --print_config`` prints (it exits once it has)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main([*argv, "--print_config"])
    assert stop.value.code in (None, 0), out.getvalue()
    return yaml.safe_load(out.getvalue())


def test_the_base_ships_inside_the_package() -> None:
    """Package data (pyproject's ``package-data``), so a wheel install has it too."""
    import tomllib

    assert BASE_CONFIG == ROOT / "visionsuite" / "cli" / "base.yaml" and BASE_CONFIG.is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "base.yaml" in package_data["visionsuite.cli"]
    assert len(SHIPPED) >= 30


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_shipped_config_leaves_out_what_the_base_provides(config: Path) -> None:
    """No shipped config repeats a base value (or the command's defaults: seed 42, test after fit);
    a config may still set one of those keys to a value of its own."""
    base = _leaves(yaml.safe_load(BASE_CONFIG.read_text()))
    base |= {"seed_everything": 42, "test_after_fit": True}
    own = _leaves(yaml.safe_load(config.read_text()))
    repeated = sorted(key for key, value in base.items() if key in own and _same(own[key], value))
    assert not repeated, f"{config.relative_to(ROOT)} repeats the base's {repeated}"


def test_a_config_without_a_trainer_block_gets_the_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From another working directory too: the base is found by the package, not the cwd."""
    config = tmp_path / "bare.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"class_path": "visionsuite.tasks.ClassificationTask", "init_args": {"backbone": "lenet5", "in_chans": 1}},
        "data": {"class_path": "visionsuite.data.FashionMNISTDataModule"},
    }))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    resolved = _resolved(["fit", "--config", str(config)])
    assert resolved["seed_everything"] == 42 and resolved["test_after_fit"] is True
    trainer = resolved["trainer"]
    assert (trainer["accelerator"], trainer["devices"]) == ("auto", 1)
    assert trainer["logger"]["class_path"] == "lightning.pytorch.loggers.CSVLogger"
    # a config's own value wins over the base's, and the command line over both
    config.write_text(config.read_text() + "trainer:\n  devices: 2\n  logger: false\n")
    resolved = _resolved(["test", "--config", str(config), "--trainer.accelerator", "cpu"])
    trainer = resolved["trainer"]
    assert (trainer["accelerator"], trainer["devices"], trainer["logger"]) == ("cpu", 2, False)


def test_a_logger_config_replaces_the_base_s_csv_logger() -> None:
    shipped = str(ROOT / "configs" / "classification" / "lenet5_fashion_mnist.yaml")
    resolved = _resolved(["fit", "--config", shipped, "--config", str(ROOT / "configs" / "logger" / "wandb.yaml")])
    logger = resolved["trainer"]["logger"]
    assert logger["class_path"] == "lightning.pytorch.loggers.WandbLogger" and logger["init_args"]["project"] == "visionsuite"
