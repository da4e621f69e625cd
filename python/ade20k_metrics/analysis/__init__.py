"""Per-image statistics and what researchers derive from them (intervals, paired comparisons)."""
