"""Everything a run is: its folder and ``latest`` link (``folders``), the config pointed at it
(``config``), checkpoint resolution and safe loading (``checkpoints``), and the trained model
loaded back from a config and a checkpoint (``trained``)."""
