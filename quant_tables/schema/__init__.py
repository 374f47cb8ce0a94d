"""JSON Schemas of the table formats (data files; a package so they ship with the wheel)."""
