"""Offline evaluation: bag I/O (the bag contract), bag replay evaluation, its report, classical baselines."""
