"""Where logs come from: the paging/completeness engine, the snapshot, progress."""
