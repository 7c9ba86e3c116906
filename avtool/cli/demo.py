"""`avtool demo`"""


def demo() -> None:
    """Run every system end to end on synthetic corpora."""
    raise NotImplementedError
