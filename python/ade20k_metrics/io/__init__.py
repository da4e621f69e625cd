"""Files in and out: pairing and decoding label files, writing reports and figures."""
