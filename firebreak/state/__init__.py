"""State tables kept with their own domain (they share `memory.models.Base`'s metadata)."""
