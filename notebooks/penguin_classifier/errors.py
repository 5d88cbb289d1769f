"""The one error type for bad input: the CLI and the job runner print it as a single line."""


class PenguinInputError(ValueError):
    """Bad input from the user: a missing file, a wrong column, a value out of range.

    Its message is one line that names the problem and the file, column or value.
    """


class PenguinRunError(RuntimeError):
    """A run that failed for a reason other than input (a distributed rank raised, a timeout).

    Its message is one line: what failed and the first error behind it.
    """
