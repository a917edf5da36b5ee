"""Explicit rewards r_ex(x, y): rule/function judges and sequence-classifier reward models."""
