"""Models of the online slice (used by no other slice)."""
