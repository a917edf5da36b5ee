"""Tasks with a program-checked answer: prompts that carry their constraints, and the gold judges that
check them (selfplay/tasks/ifeval.py)."""
