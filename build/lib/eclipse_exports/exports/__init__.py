"""The export run and what it writes: rows through a format writer into one verified file per job."""
