"""Model paths: the built-in tiny policy and checks on user-given model folders."""
