"""``--run`` on the command line: address a trained run instead of retyping its config.

``visionsuite test --run latest`` becomes ``test --config <run>/config.yaml … --ckpt_path
<run>/checkpoints/best-….ckpt --run <run>``: the run's own resolved config (every ``fit``
override included) comes first, the user's options after it (so they may change how the run is
executed or what it is applied to), and the checkpoint is checked against the result like any
``--ckpt_path`` (:func:`visionsuite.runs.checkpoints.check_settings`): an override that would
change what the weights mean is refused with one line. Outputs go to a new folder beside the
run (``<stamp>-test``), never into it. ``fit --run RUN`` resumes the run in place from its
``last.ckpt`` with its own config (``--trainer.max_epochs`` may extend it).
"""

from __future__ import annotations

from pathlib import Path

from visionsuite.errors import ConfigError


def take_option(args: list[str], name: str) -> tuple[str | None, list[str]]:
    """The value of ``--name V`` / ``--name=V`` (the last one wins) and ``args`` without it."""
    value, rest, i = None, [], 0
    while i < len(args):
        arg = args[i]
        if arg == name:
            if i + 1 >= len(args):
                raise ConfigError(f"{name} needs a value")
            value, i = args[i + 1], i + 2
            continue
        if arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return value, rest


def has_option(args: list[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in args)


def expand_run(subcommand: str, args: list[str]) -> list[str]:
    """Rewrite ``args`` (after the subcommand) so that ``--run``/``--ckpt`` load the run."""
    from visionsuite.core.notes import warn
    from visionsuite.runs import folders

    spec, args = take_option(args, "--run")
    ckpt_spec, args = take_option(args, "--ckpt")
    if spec is None:
        return args if ckpt_spec is None else [*args, "--ckpt_path", ckpt_spec]
    for clash in ("--ckpt_path", "--run_name"):
        if has_option(args, clash):
            raise ConfigError(f"--run {spec} and {clash} together: with --run, choose the checkpoint with --ckpt best|last|PATH")
    run = folders.resolve_run(spec)
    if subcommand == "fit":  # resume the run in place, from its last checkpoint, with its own config
        if ckpt_spec not in (None, "last"):
            raise ConfigError(f"fit --run {spec} resumes the run from its last.ckpt; --ckpt {ckpt_spec} is for test/predict/export")
        folders.run_checkpoint(run, "last")  # one line if there is none
        return ["--config", str(run / "config.yaml"), *args, "--trainer.default_root_dir", str(run.parent),
                "--ckpt_path", "last", "--run_name", run.name, "--run", str(run)]  # fmt: skip
    ckpt, note = folders.run_checkpoint_for(run, ckpt_spec)
    if note:
        warn(note)
    root = [] if has_option(args, "--trainer.default_root_dir") else ["--trainer.default_root_dir", str(run.parent)]
    return ["--config", str(run / "config.yaml"), *args, *root, "--ckpt_path", str(ckpt), "--run", str(run)]
