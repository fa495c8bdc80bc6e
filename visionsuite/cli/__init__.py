"""The ``visionsuite`` command: parses arguments and hands each subcommand to its layer
(``fit``/``test``/… to Lightning's CLI over :mod:`visionsuite.tasks`, the tools to
:mod:`visionsuite.tools`). Entry point: :func:`visionsuite.cli.app.main`."""
