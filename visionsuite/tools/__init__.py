"""Commands that use a trained run or a model: ``ensemble``, ``explain``, ``export``,
``predict-exported`` (``exported``) and ``summary``. Each module has a ``main(args)``."""
