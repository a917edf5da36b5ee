"""Records that stages hand to each other, their on-disk form, and prompt sources."""
