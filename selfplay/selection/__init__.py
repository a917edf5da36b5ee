"""Pairing responses, explicit and implicit margins, selection metrics and top-k (METHOD.md sec. 2)."""
