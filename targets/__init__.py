"""Target descriptions (hardware data with sources) and their backends."""
