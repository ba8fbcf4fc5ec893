"""Example programs for raylite; each runs unchanged on real Ray (``--backend ray``)."""
