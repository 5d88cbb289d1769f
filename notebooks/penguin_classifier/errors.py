"""The project's two error types, each printed as a single line by the CLI and the job runner:
bad input (exit 2) and a run that failed for another reason (exit 1)."""


class PenguinInputError(ValueError):
    """Bad input from the user: a missing file, a wrong column, a value out of range.

    Its message is one line that names the problem and the file, column or value.
    """


class PenguinRunError(RuntimeError):
    """A run that failed for a reason other than input (a distributed rank raised, a timeout).

    Its message is one line: what failed and the first error behind it.
    """
