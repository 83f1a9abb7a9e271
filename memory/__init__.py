"""The incident log (state database) and the searchable memory of past incidents."""
