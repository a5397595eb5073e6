"""Units of memory, stated once: every MB and GB the project prints or compares is one of these."""
MB = 2 ** 20  # bytes in a megabyte as reported (MiB)
GB = 2 ** 30  # bytes in a gigabyte (GiB), the unit of the paper's 24 GB card
