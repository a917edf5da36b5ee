"""Held-out evaluation of each new policy with the judge."""
