"""Figures of a run and the comparison of several runs (`python -m selfplay.report RUN [RUN ...]`)."""
