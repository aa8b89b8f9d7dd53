"""Read models that follow the global log with tracked positions; rebuildable."""
