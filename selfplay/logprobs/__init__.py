"""Implicit rewards: log-probabilities of responses under a policy, by teacher forcing."""
