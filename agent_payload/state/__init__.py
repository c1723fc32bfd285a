"""On-disk state of the payload: the directory layout, atomic writes and file locks."""
