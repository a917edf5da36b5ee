"""Pairing responses, explicit and implicit margins, selection metrics and top-k (docs/method.md section 2)."""
