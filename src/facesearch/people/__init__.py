"""People in the archive (issue 14): every indexed face grouped into persons, at a calibrated operating point."""
