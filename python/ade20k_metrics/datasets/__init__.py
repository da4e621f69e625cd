"""Facts about datasets (class tables, palettes, sample annotations, published results), as data files."""
