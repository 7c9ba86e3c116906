"""`avtool status DIR...`"""


def status() -> None:
    """Table of stages."""
    raise NotImplementedError
