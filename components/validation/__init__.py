"""Stage 2: fail-closed Great Expectations validation of the teacher dataset."""
