"""The lowest layer: small rules every other layer may use and that use nothing of the suite
but :mod:`visionsuite.errors` (option range rules, one-line notes to the user)."""
