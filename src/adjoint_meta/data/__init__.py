"""Task sources: synthetic families and (in later modules) real collaborative-filtering data."""
