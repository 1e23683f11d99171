"""Offline training subpackage: data synthesis, training, evaluation and export."""
