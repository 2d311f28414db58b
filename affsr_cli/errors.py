"""The errors whose message is meant for the user. The CLI prints one as one line on stderr (exit code 2);
the Python API raises it as it is. Each is a ValueError too, as the engine's errors have always been, so
`except ValueError` keeps working; anything else that escapes is a bug (the CLI says so, and
AFFSR_DEBUG=1 shows its traceback)."""


class AffsrError(ValueError):
    """A problem with the user's input, files, options or environment; the message says what to fix."""


class ImageFileError(AffsrError):
    """A file that cannot be read as an image; the message names the file."""
