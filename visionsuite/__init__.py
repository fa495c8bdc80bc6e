"""visionsuite: one backbone library feeding Lightning task modules, driven by YAML configs."""

__version__ = "0.1.0"
