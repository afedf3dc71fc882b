"""Exceptions shared by the whole library.

Every error raised for bad input names the file (or folder) and the problem, so a
student sees at once what to fix.
"""


class NucleisegError(Exception):
    """Base class of the library's own errors."""


class DataError(NucleisegError, ValueError):
    """Input data is missing, malformed or inconsistent.

    Parameters
    ----------
    path : str or os.PathLike
        The file or folder at fault.
    problem : str
        What is wrong with it, in plain words.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CheckpointError(NucleisegError, ValueError):
    """A checkpoint cannot be used (missing, corrupt, or another architecture)."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DownloadError(NucleisegError, RuntimeError):
    """A download failed, was truncated, or could not be verified."""
