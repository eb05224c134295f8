"""Models of the sofo slice (used by no other slice)."""
