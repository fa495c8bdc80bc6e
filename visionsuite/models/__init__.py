"""Task models built on the backbone library (encoder + decoder + head), one subpackage per task."""
