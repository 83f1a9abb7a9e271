"""Data sources the investigator queries or acts on, written once in one registry."""
